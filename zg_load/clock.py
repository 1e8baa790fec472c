"""The engine's clock: monotonic nanoseconds and sleeping until a deadline.

The real clock reads ``time.perf_counter_ns`` (never the event loop's cached
millisecond time) and pairs it once with the wall clock, so interval logs can carry
epoch start times. Tests use ``zg_load.testing.ManualClock`` instead.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now_ns(self) -> int: ...

    async def sleep_until(self, deadline_ns: int) -> None: ...

    def epoch_s(self, at_ns: int) -> float:
        """Wall-clock epoch seconds at monotonic time ``at_ns``."""
        ...


class RealClock:
    def __init__(self) -> None:
        self._mono0 = time.perf_counter_ns()
        self._wall0 = time.time()

    # the C function itself: the engine reads the clock twice per request
    now_ns = staticmethod(time.perf_counter_ns)

    async def sleep_until(self, deadline_ns: int) -> None:
        delay_ns = deadline_ns - time.perf_counter_ns()
        await anyio.sleep(max(0, delay_ns) / 1e9)

    def epoch_s(self, at_ns: int) -> float:
        return self._wall0 + (at_ns - self._mono0) / 1e9
