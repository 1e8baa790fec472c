"""The result of a run: exact counters plus what the recorder holds.

Pure data; the engine fills it, analysis and summary read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from zg_load.analysis import IntervalView
from zg_load.hdr import Histogram
from zg_load.recorder import Key


class Totals(Protocol):
    """Whole-run histograms and counts: a Recorder, or the exact merge of several workers'."""

    def latency(self, key: Key) -> Histogram: ...

    def service(self, key: Key) -> Histogram: ...

    def lag(self) -> Histogram: ...

    def counts(self) -> dict[Key, int]: ...

    def keys(self) -> list[Key]: ...


@dataclass
class Tally:
    """Exact counters; ``not_sent`` and ``in_flight`` follow from the others."""

    intended: int = 0
    sent: int = 0
    ok: int = 0
    refused: int = 0
    error: int = 0
    timeout: int = 0
    transport: int = 0
    drained: int = 0

    @property
    def completed(self) -> int:
        return self.ok + self.refused + self.error + self.timeout + self.transport

    @property
    def not_sent(self) -> int:
        return self.intended - self.sent

    @property
    def in_flight(self) -> int:
        return self.sent - self.completed


@dataclass
class RunResult:
    tally: Tally
    recorder: Totals
    intervals: list[IntervalView]  # by completion time
    phase_latency: list[dict[tuple[str, int, str], Histogram]]
    intended_at: dict[int, int]  # interval index -> requests that fell due in it
    sent_at: dict[int, int]  # interval index -> requests sent in it
    status: list[tuple[float, Any]]  # (offset s, GET /v1/status body) samples
    phase_intended: list[int]
    phase_sent: list[int]
    refusals: Counter[tuple[str, int, str]]
    errors: Counter[str]
    probes_total: int
    probes_ok: int
    start_epoch_s: float
    end_ns: int
    first_send_ns: int | None
    last_done_ns: int | None
    partial: bool
    stop_reason: str
    setup_errors: list[str] = field(default_factory=list)  # what the target refused
    # cohorts: requests by the interval of their intended start (priority adherence)
    cohorts: list[IntervalView] = field(default_factory=list)
