"""How zg-load's processes share a Ctrl-C.

A terminal's Ctrl-C reaches the whole foreground process group: zg-load, its embedded
reference service and its worker processes. It is for zg-load alone, which keeps what was
measured and then stops the others itself (SIGTERM for the service, a shared flag for
workers). So the others are started with SIGINT ignored: an ignored signal is inherited
across exec, and Python keeps an inherited ignore (the service, too, leaves it ignored).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while child processes are started inside the block (main thread only;
    elsewhere signals are not ours to change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
