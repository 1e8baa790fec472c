from __future__ import annotations

import pytest

from zg_load.aiops.metrics import ApprovalCounters, Metrics


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_empty_window_is_defined() -> None:
    clock = ManualClock()
    figures = Metrics(10.0, clock=clock).figures()
    assert figures.avg_response_time_ms is None
    assert (figures.error_rate, figures.task_completion_rate, figures.busy_s) == (0.0, 1.0, 0.0)


def test_rates_over_the_window() -> None:
    clock = ManualClock()
    metrics = Metrics(10.0, clock=clock)
    clock.now_s += 4.0
    metrics.record_answer(201, None, 0.010)
    metrics.record_answer(429, "budget_exceeded", 0.020)
    metrics.record_answer(503, "overloaded", 0.030)
    metrics.record_answer(500, "internal_error", 0.040)
    metrics.record_busy(2.0)
    figures = metrics.figures()
    assert figures.avg_response_time_ms == pytest.approx(25.0)
    assert (figures.error_rate, figures.task_completion_rate) == (0.25, 0.5)
    assert (figures.busy_s, figures.span_s) == (2.0, 4.0)
    assert metrics.counters == ApprovalCounters(admitted=1, refused_budget=1, shed=1, errors=1)


def test_old_slots_leave_the_window() -> None:
    clock = ManualClock()
    metrics = Metrics(10.0, clock=clock)
    metrics.record_answer(500, "internal_error", 1.0)
    clock.now_s += 5.0
    metrics.record_answer(201, None, 0.001)
    assert metrics.figures().error_rate == 0.5
    clock.now_s += 6.0  # the first answer is now 11 s old
    figures = metrics.figures()
    assert (figures.error_rate, figures.avg_response_time_ms) == (0.0, pytest.approx(1.0))
    assert metrics.counters.errors == 1, "counters are cumulative, not windowed"


def test_reset_clears_window_and_counters() -> None:
    clock = ManualClock()
    metrics = Metrics(10.0, clock=clock)
    metrics.record_answer(201, None, 0.5)
    metrics.reset()
    assert metrics.figures().avg_response_time_ms is None
    assert metrics.counters == ApprovalCounters()
