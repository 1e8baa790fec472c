from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from itertools import pairwise

import pytest

from zg_load.schedule import (
    MAX_STARTS,
    Arrival,
    ClosedLoop,
    Constant,
    Poisson,
    Ramp,
    closed_next,
    expected_count,
    merge_streams,
    pace,
    share,
    start_at,
    starts,
    with_offset,
)
from zg_load.units import parse_rate

S = 1_000_000_000  # ns per second


@pytest.mark.parametrize(
    ("arrival", "offsets_ns"),
    [
        (Constant(3, 1), [0, 333_333_333, 666_666_666]),
        (Constant(0.5, 4), [0, 2 * S]),
        (Constant(0.5, 4.001), [0, 2 * S, 4 * S]),
        (Constant(2.5, 1), [0, 400_000_000, 800_000_000]),
        (Constant(0.1, 25), [0, 10 * S, 20 * S]),
        (Constant(parse_rate("1/3s"), 10), [0, 3 * S, 6 * S, 9 * S]),
        (Constant(parse_rate("1/500ms"), 1.5), [0, 500_000_000, S]),
        (Constant(1, 0.5), [0]),
        (Constant(0, 10), []),
        (Constant(10, 0), []),
        (Constant(1e9, 1e-9), [0]),
    ],
)
def test_constant_starts(arrival: Constant, offsets_ns: list[int]) -> None:
    assert list(starts(arrival)) == offsets_ns
    assert expected_count(arrival) == len(offsets_ns)


def test_constant_has_no_drift() -> None:
    offsets = list(starts(Constant(1000, 10)))
    assert len(offsets) == 10_000
    assert offsets[-1] == 9_999_000_000
    assert all(b - a == 1_000_000 for a, b in pairwise(offsets))
    tenth = list(starts(Constant(0.1, 1000)))
    assert (len(tenth), tenth[-1]) == (100, 990 * S)


def test_constant_start_k_is_floor_k_over_rate() -> None:
    arrival = Constant(7, 3600)
    assert expected_count(arrival) == 25_200
    for k in (1, 2, 3, 6, 7, 12_345, 25_199):
        assert start_at(arrival, k) == k * S // 7


@pytest.mark.parametrize(
    ("arrival", "count", "picks"),
    [
        # Rate t per second: integral t**2 / 2, so start k is at sqrt(2k) s.
        (
            Ramp(0, 10, 10),
            50,
            {0: 0, 1: 1_414_213_562, 2: 2 * S, 3: 2_449_489_742, 8: 4 * S, 49: 9_899_494_936},
        ),
        # Rate 10 - t: integral 10t - t**2 / 2, so start k is at 10 - sqrt(100 - 2k) s.
        (
            Ramp(10, 0, 10),
            50,
            {0: 0, 1: 100_505_063, 2: 202_041_028, 18: 2 * S, 49: 8_585_786_437},
        ),
        # Rate 1 + t over 2 s: integral 4, start k at sqrt(1 + 2k) - 1 s.
        (Ramp(1, 3, 2), 4, {0: 0, 1: 732_050_807, 2: 1_236_067_977, 3: 1_645_751_311}),
        # Integral 2.5: ceil gives 3 starts.
        (Ramp(0, 1, 5), 3, {0: 0, 1: 3_162_277_660, 2: 4_472_135_954}),
        (Ramp(0, 0, 10), 0, {}),
        (Ramp(5, 10, 0), 0, {}),
    ],
)
def test_ramp_starts(arrival: Ramp, count: int, picks: dict[int, int]) -> None:
    offsets = list(starts(arrival))
    assert len(offsets) == count == expected_count(arrival)
    assert {k: offsets[k] for k in picks} == picks
    assert all(a < b for a, b in pairwise(offsets))
    assert all(0 <= offset < arrival.duration_s * S for offset in offsets)


@pytest.mark.parametrize(("rate_per_s", "duration_s"), [(3, 1), (1000, 10), (0.5, 4), (7, 13)])
def test_flat_ramp_equals_constant(rate_per_s: float, duration_s: float) -> None:
    ramp = list(starts(Ramp(rate_per_s, rate_per_s, duration_s)))
    assert ramp == list(starts(Constant(rate_per_s, duration_s)))


@pytest.mark.parametrize(
    ("arrival", "count"),
    [
        (Ramp(3, 7, 3.3), 17),  # integral 16.5
        (Ramp(7, 3, 3.3), 17),
        (Ramp(0.5, 0, 7), 2),  # integral 1.75
        (Ramp(1, 2, 0.1), 1),  # integral 0.15
        (Ramp(0, 1, 2), 1),  # integral exactly 1: the start at 2 s is past the end
        (Ramp(0, 1e6, 1000), 500_000_000),
    ],
)
def test_ramp_count_is_ceil_of_integral(arrival: Ramp, count: int) -> None:
    assert expected_count(arrival) == count


def test_poisson_is_reproducible() -> None:
    first = list(starts(Poisson(1000, 10, seed=7)))
    assert first == list(starts(Poisson(1000, 10, seed=7)))
    assert first != list(starts(Poisson(1000, 10, seed=8)))
    assert first == sorted(first)
    assert all(0 <= offset < 10 * S for offset in first)


def test_poisson_mean_rate() -> None:
    arrival = Poisson(1000, 10, seed=0)
    count = len(list(starts(arrival)))
    assert count == 10_059  # fixed by the seed
    assert abs(count - 10_000) <= 500
    assert expected_count(arrival) == count
    assert list(starts(Poisson(1000, 10, seed=0)))[:3] == [1_860_607, 3_279_236, 3_824_949]


@pytest.mark.parametrize("arrival", [Poisson(0, 10), Poisson(100, 0)])
def test_poisson_empty(arrival: Poisson) -> None:
    assert list(starts(arrival)) == []
    assert expected_count(arrival) == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Constant(-1, 1), "rate_per_s must be a finite number >= 0, got -1"),
        (lambda: Constant(1, -1), "duration_s must be a finite number >= 0, got -1"),
        (lambda: Constant(math.nan, 1), "rate_per_s must be a finite number >= 0, got nan"),
        (lambda: Constant(math.inf, 1), "rate_per_s must be a finite number >= 0, got inf"),
        (lambda: Poisson(-0.5, 1), "rate_per_s must be a finite number >= 0"),
        (lambda: Ramp(-1, 1, 1), "start_rate_per_s must be a finite number >= 0"),
        (lambda: Ramp(1, -1, 1), "end_rate_per_s must be a finite number >= 0"),
        (lambda: Ramp(1, 1, -1), "duration_s must be a finite number >= 0"),
        (lambda: ClosedLoop(-1, 1, 1), "users must be >= 0"),
        (lambda: ClosedLoop(1, -1, 1), "think_s must be a finite number >= 0"),
        (
            lambda: Constant(1e6, 1e4),
            f"would plan 10000000000 requests; the limit is {MAX_STARTS}",
        ),
        (lambda: Poisson(1e6, 1e4), "would plan 10000000000 requests"),
        (lambda: Ramp(0, 2e6, 1e4), "would plan 10000000000 requests"),
        (lambda: Constant(1e300, 1e300), "would plan infinitely many requests"),
    ],
)
def test_invalid_arrivals(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_limit_is_inclusive() -> None:
    assert expected_count(Constant(1e6, 1000)) == MAX_STARTS


def test_start_at_outside_schedule() -> None:
    with pytest.raises(IndexError, match="start 3 is outside this schedule of 3 starts"):
        start_at(Constant(3, 1), 3)


ONE_PER_S = Constant(1, 10)
HALF_PER_S = Constant(0.5, 10)
RAMP_UP = Ramp(0, 10, 10)


@pytest.mark.parametrize(
    ("arrival", "elapsed_ns", "sent", "wait_ns", "stop"),
    [
        # On time.
        (ONE_PER_S, 0, 0, 0, False),
        (ONE_PER_S, 0, 1, S, False),
        (ONE_PER_S, S - 1, 1, 1, False),
        (ONE_PER_S, S, 1, 0, False),
        (ONE_PER_S, 1_500_000_000, 2, 500_000_000, False),
        # Behind: send now, and keep sending while behind.
        (ONE_PER_S, 5 * S, 2, 0, False),
        (ONE_PER_S, 5 * S, 5, 0, False),
        # Ahead: wait for the next due time.
        (ONE_PER_S, 0, 3, 3 * S, False),
        (ONE_PER_S, 9 * S, 9, 0, False),
        # Done.
        (ONE_PER_S, 9 * S, 10, 0, True),
        (ONE_PER_S, 0, 11, 0, True),
        (ONE_PER_S, 20 * S, 10, 0, True),
        # Fractional rate.
        (HALF_PER_S, 0, 1, 2 * S, False),
        (HALF_PER_S, S, 2, 3 * S, False),
        (HALF_PER_S, 8 * S, 5, 0, True),
        # Sad rows: nothing to send.
        (Constant(0, 10), 0, 0, 0, True),
        (Constant(10, 0), 0, 0, 0, True),
        (Ramp(0, 0, 10), 0, 0, 0, True),
        # Ramp from zero: start k at sqrt(2k) s.
        (RAMP_UP, 0, 0, 0, False),
        (RAMP_UP, 0, 1, 1_414_213_562, False),
        (RAMP_UP, S, 2, S, False),
        (RAMP_UP, 3 * S, 2, 0, False),
        (RAMP_UP, 9 * S, 49, 899_494_936, False),
        (RAMP_UP, 9 * S, 50, 0, True),
    ],
)
def test_pace(arrival: Arrival, elapsed_ns: int, sent: int, wait_ns: int, stop: bool) -> None:
    assert pace(arrival, elapsed_ns, sent) == (wait_ns, stop)


def test_pace_sad_calls() -> None:
    with pytest.raises(TypeError, match="iterate starts"):
        pace(Poisson(10, 1), 0, 0)
    with pytest.raises(ValueError, match="must be >= 0"):
        pace(ONE_PER_S, -1, 0)
    with pytest.raises(ValueError, match="must be >= 0"):
        pace(ONE_PER_S, 0, -1)


def test_pace_drives_the_whole_schedule() -> None:
    arrival = Ramp(2, 50, 3)
    sent_at: list[int] = []
    elapsed_ns = 0
    while True:
        wait_ns, stop = pace(arrival, elapsed_ns, len(sent_at))
        if stop:
            break
        elapsed_ns += wait_ns
        if wait_ns == 0:
            sent_at.append(elapsed_ns)
    assert sent_at == list(starts(arrival))


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
@pytest.mark.parametrize("rate_per_s", [0.5, 3, 1000])
def test_share_is_a_partition(workers: int, rate_per_s: float) -> None:
    arrival = Constant(rate_per_s, 5)
    everything = list(starts(arrival))
    shares = [list(share(starts(arrival), worker, workers)) for worker in range(workers)]
    assert sorted(offset for part in shares for offset in part) == everything
    sizes = [len(part) for part in shares]
    assert max(sizes) - min(sizes) <= 1
    assert shares[0] == everything[::workers]


def test_share_of_a_slow_rate_loses_nothing() -> None:
    shares = [list(share(starts(Constant(1, 2)), worker, 4)) for worker in range(4)]
    assert shares == [[0], [S], [], []]


@pytest.mark.parametrize(
    ("worker", "workers", "message"),
    [
        (0, 0, "workers must be >= 1, got 0"),
        (2, 2, r"worker must be in 0\.\.1, got 2"),
        (-1, 3, "got -1"),
    ],
)
def test_share_rejects(worker: int, workers: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        share([0], worker, workers)


def test_with_offset() -> None:
    assert list(with_offset(starts(Constant(2, 1)), 5 * S)) == [5 * S, 5 * S + 500_000_000]
    assert list(with_offset([], 7)) == []
    with pytest.raises(ValueError, match="offset_ns must be >= 0, got -1"):
        with_offset([0], -1)


def test_merge_streams_orders_and_keeps_ties_stable() -> None:
    a = [(0, "a0"), (10, "a1"), (20, "a2")]
    b = [(0, "b0"), (5, "b1"), (20, "b2"), (30, "b3")]
    c = [(10, "c0")]
    merged = list(merge_streams([a, b, c], key=lambda item: item[0]))
    assert [name for _, name in merged] == ["a0", "b0", "b1", "a1", "c0", "a2", "b2", "b3"]
    assert list(merge_streams([[], []], key=lambda x: x)) == []


def test_merge_phases_into_one_schedule() -> None:
    warmup = starts(Constant(2, 1))
    storm = with_offset(starts(Constant(4, 0.5)), 1 * S)
    merged = list(merge_streams([warmup, storm], key=lambda offset: offset))
    assert merged == [0, 500_000_000, S, 1_250_000_000]


CLOSED = ClosedLoop(users=2, think_s=0.5, duration_s=2)


@pytest.mark.parametrize(
    ("user", "done_ns", "next_ns"),
    [
        (0, 0, 500_000_000),
        (1, S, 1_500_000_000),
        (0, 1_499_999_999, 1_999_999_999),
        (0, 1_500_000_000, None),
        (1, 3 * S, None),
    ],
)
def test_closed_next(user: int, done_ns: int, next_ns: int | None) -> None:
    assert closed_next(CLOSED, user, done_ns) == next_ns


@pytest.mark.parametrize(
    ("user", "done_ns", "message"),
    [(2, 0, r"user must be in 0\.\.1, got 2"), (-1, 0, "got -1"), (0, -5, "done_ns must be >= 0")],
)
def test_closed_next_rejects(user: int, done_ns: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        closed_next(CLOSED, user, done_ns)


def test_core_loads_no_event_loop_or_http() -> None:
    code = (
        "import sys, zg_load.schedule, zg_load.units; "
        "print(sorted(m for m in ('asyncio', 'anyio', 'aiohttp') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
