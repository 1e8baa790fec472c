"""The ``zg-load`` console entry point.

It imports the command line lazily, so that a Ctrl-C while Python is still loading it
(the first few hundred milliseconds) ends the program with one line, not a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from zg_load.cli import main as cli_main
    except KeyboardInterrupt:  # before the load started: as run --help says, exit 2
        sys.stderr.write("\nzg-load: interrupted before the load started: nothing was sent\n")
        raise SystemExit(2) from None
    cli_main()
