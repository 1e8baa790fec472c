"""Arrival processes: when each request of a phase is meant to start.

Owns the pure pacers. An arrival process yields the intended start offsets of its
requests, in integer nanoseconds from the start of its phase, in non-decreasing order
and within [0, duration). No clocks, no I/O, no event loop: the engine asks `starts()`
(or `pace()`, vegeta-style) and keeps time itself.

Guarantees:
- Constant and Ramp are exact. Rates and durations are taken at their shortest decimal
  value (0.1 is one tenth) and every start is computed from its index with integer
  arithmetic, never by accumulating gaps, so nothing drifts: the k-th start of
  Constant is floor(k * 1e9 / rate) and of Ramp the floor of the time at which the
  integral of the rate reaches k. Their count is ceil(rate integral over the duration).
- Poisson is reproducible: the same seed gives the same offsets.
- A schedule split with `share()` loses and duplicates nothing, whatever the rate.
- Planning more than MAX_STARTS requests is refused up front.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TypeAlias, TypeVar

__all__ = [
    "MAX_STARTS",
    "Arrival",
    "ClosedLoop",
    "Constant",
    "Poisson",
    "Ramp",
    "closed_next",
    "expected_count",
    "merge_streams",
    "pace",
    "share",
    "start_at",
    "starts",
    "with_offset",
]

T = TypeVar("T")

MAX_STARTS = 1_000_000_000
_NS_PER_S = 10**9


@dataclass(frozen=True)
class Constant:
    """`rate_per_s` requests per second, evenly spaced, for `duration_s`; the first at 0."""

    rate_per_s: float
    duration_s: float

    def __post_init__(self) -> None:
        _check_non_negative("rate_per_s", self.rate_per_s)
        _check_non_negative("duration_s", self.duration_s)
        _check_limit(self.rate_per_s * self.duration_s)


@dataclass(frozen=True)
class Poisson:
    """Poisson arrivals at mean `rate_per_s` for `duration_s`: exponential gaps from `seed`.

    The first start is one gap after 0, so the count over the duration has mean rate * duration.
    """

    rate_per_s: float
    duration_s: float
    seed: int = 0

    def __post_init__(self) -> None:
        _check_non_negative("rate_per_s", self.rate_per_s)
        _check_non_negative("duration_s", self.duration_s)
        _check_limit(self.rate_per_s * self.duration_s)


@dataclass(frozen=True)
class Ramp:
    """A rate moving linearly from `start_rate_per_s` to `end_rate_per_s` over `duration_s`."""

    start_rate_per_s: float
    end_rate_per_s: float
    duration_s: float

    def __post_init__(self) -> None:
        _check_non_negative("start_rate_per_s", self.start_rate_per_s)
        _check_non_negative("end_rate_per_s", self.end_rate_per_s)
        _check_non_negative("duration_s", self.duration_s)
        mean_rate_per_s = (self.start_rate_per_s + self.end_rate_per_s) / 2
        _check_limit(mean_rate_per_s * self.duration_s)


Arrival: TypeAlias = Constant | Poisson | Ramp


@dataclass(frozen=True)
class ClosedLoop:
    """`users` virtual users, each starting its next request `think_s` after its last one ended.

    The engine runs these; `closed_next` is the pure rule for the next start.
    """

    users: int
    think_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.users < 0:
            raise ValueError(f"users must be >= 0, got {self.users}.")
        _check_non_negative("think_s", self.think_s)
        _check_non_negative("duration_s", self.duration_s)


def starts(arrival: Arrival) -> Iterator[int]:
    """Yield the intended start offsets (ns from the phase start) of `arrival`, in order."""
    if isinstance(arrival, Poisson):
        return _poisson_starts(arrival)
    plan = _plan(arrival)
    return map(plan.start_at, range(plan.count))


def expected_count(arrival: Arrival) -> int:
    """Return exactly how many offsets `starts(arrival)` yields.

    Closed form for Constant and Ramp; for Poisson this iterates the seeded schedule.
    """
    if isinstance(arrival, Poisson):
        return sum(1 for _ in _poisson_starts(arrival))
    return _plan(arrival).count


def start_at(arrival: Constant | Ramp, index: int) -> int:
    """Return the offset (ns) of start number `index` (from 0) of a Constant or Ramp.

    Raises IndexError if the schedule has no such start.
    """
    plan = _plan(arrival)
    if not 0 <= index < plan.count:
        raise IndexError(f"start {index} is outside this schedule of {plan.count} starts.")
    return plan.start_at(index)


def pace(arrival: Arrival, elapsed_ns: int, sent: int) -> tuple[int, bool]:
    """Return (wait_ns until the next request is due, stop), given time and requests so far.

    wait_ns is 0 when the next request is already due: the caller sends every due
    request before asking again. stop is True once `sent` reaches the schedule's count.
    Poisson has no closed form for its k-th start: iterate `starts()` instead (TypeError).
    """
    if isinstance(arrival, Poisson):
        raise TypeError("pace() needs a closed-form schedule; iterate starts() for Poisson.")
    if elapsed_ns < 0 or sent < 0:
        raise ValueError(f"elapsed_ns and sent must be >= 0, got {elapsed_ns} and {sent}.")
    plan = _plan(arrival)
    if sent >= plan.count:
        return 0, True
    return max(0, plan.start_at(sent) - elapsed_ns), False


def share(offsets: Iterable[int], worker: int, workers: int) -> Iterator[int]:
    """Yield worker `worker`'s part of one global schedule split among `workers`.

    Worker i takes the starts whose index k satisfies k % workers == i, so the shares
    together are exactly the global schedule, even when it has fewer starts than workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if not 0 <= worker < workers:
        raise ValueError(f"worker must be in 0..{workers - 1}, got {worker}.")
    return itertools.islice(offsets, worker, None, workers)


def with_offset(offsets: Iterable[int], offset_ns: int) -> Iterator[int]:
    """Yield `offsets` shifted later by `offset_ns` (e.g. a phase that starts after others)."""
    if offset_ns < 0:
        raise ValueError(f"offset_ns must be >= 0, got {offset_ns}.")
    if offset_ns == 0:
        return iter(offsets)
    return map(offset_ns.__add__, offsets)  # no Python frame per offset


def merge_streams(streams: Sequence[Iterable[T]], key: Callable[[T], int]) -> Iterator[T]:
    """Merge streams that are each ordered by `key` into one ordered stream.

    Stable: items with equal keys come out in stream order, then in their order within a stream.
    """
    return heapq.merge(*streams, key=key)


def closed_next(closed: ClosedLoop, user: int, done_ns: int) -> int | None:
    """Return when `user`'s next request starts (ns) after one ended at `done_ns`, or None.

    None when that start would fall at or past the end of the duration.
    """
    if not 0 <= user < closed.users:
        raise ValueError(f"user must be in 0..{closed.users - 1}, got {user}.")
    if done_ns < 0:
        raise ValueError(f"done_ns must be >= 0, got {done_ns}.")
    next_ns = done_ns + _to_ns(closed.think_s)
    return next_ns if next_ns < _to_ns(closed.duration_s) else None


@dataclass(frozen=True)
class _Plan:
    """A Constant or Ramp in integers: start k is the largest n with a*n*n + b*n <= k*c.

    With the rates as p0/q and p1/q per second and the duration D ns, the rate integral
    up to n ns is (a*n*n + b*n) / c where a = p1 - p0, b = 2*D*p0, c = 2*q*1e9*D.
    """

    count: int
    a: int
    b: int
    c: int

    def start_at(self, index: int) -> int:
        if index == 0:
            return 0
        target = index * self.c
        if self.a == 0:
            return target // self.b
        # The smaller root of a*n*n + b*n = target, in the form that needs no cancellation.
        root = 2 * target // (self.b + math.isqrt(self.b * self.b + 4 * self.a * target))
        while self._integral(root + 1) <= target:
            root += 1
        while root > 0 and self._integral(root) > target:
            root -= 1
        return root

    def _integral(self, n: int) -> int:
        return self.a * n * n + self.b * n


@lru_cache(maxsize=256)
def _plan(arrival: Constant | Ramp) -> _Plan:
    if isinstance(arrival, Constant):
        start, end = _decimal(arrival.rate_per_s), _decimal(arrival.rate_per_s)
    else:
        start, end = _decimal(arrival.start_rate_per_s), _decimal(arrival.end_rate_per_s)
    duration_ns = _to_ns(arrival.duration_s)
    if duration_ns == 0 or start + end == 0:
        return _Plan(count=0, a=0, b=1, c=0)
    q = math.lcm(start.denominator, end.denominator)
    p0, p1 = int(start * q), int(end * q)
    c = 2 * q * _NS_PER_S * duration_ns
    count = -(-(p0 + p1) * duration_ns // (2 * q * _NS_PER_S))
    return _Plan(count=count, a=p1 - p0, b=2 * duration_ns * p0, c=c)


def _poisson_starts(arrival: Poisson) -> Iterator[int]:
    duration_ns = _to_ns(arrival.duration_s)
    if arrival.rate_per_s == 0:
        return
    rng = random.Random(arrival.seed)
    mean_gap_ns = _NS_PER_S / arrival.rate_per_s
    at_ns = 0.0
    while True:
        # Inverse-transform sampling, written out so the offsets do not depend on the
        # Python version's expovariate.
        at_ns += -math.log(1.0 - rng.random()) * mean_gap_ns
        if at_ns >= duration_ns:
            return
        yield int(at_ns)


def _decimal(value: float) -> Fraction:
    """Return a float at its shortest decimal value, so 0.1 means exactly one tenth."""
    return Fraction(repr(float(value)))


def _to_ns(duration_s: float) -> int:
    return round(_decimal(duration_s) * _NS_PER_S)


def _check_non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")


def _check_limit(planned: float) -> None:
    """Refuse plans too large to run, before any offset is computed."""
    if planned > MAX_STARTS:
        count = f"{math.ceil(planned)}" if math.isfinite(planned) else "infinitely many"
        raise ValueError(
            f"this arrival would plan {count} requests; the limit is {MAX_STARTS}: "
            "lower the rate or the duration."
        )
