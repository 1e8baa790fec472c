"""Recording cost per request: ``Recorder.record_row`` + ``record_lag_row`` on the hot path
(what the Engine calls), the fold into HDR histograms when an interval closes, and
one-by-one ``Histogram.record`` for comparison.

The stall is what one fold blocks the event loop for. Folded in one go at the close, it
grows with the rate; folded in slices (``fold_pending`` whenever ``--slice-rows`` rows are
pending, as the Engine does between sends, every 8,192 rows), each fold and the close stay
short.

  python benchmarks/bench_recording.py                 # 100,000 completions per interval
  python benchmarks/bench_recording.py --per-interval 60000 --intervals 20
  python benchmarks/bench_recording.py --slice-rows 8192
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from zg_load.hdr import Histogram
from zg_load.recorder import Recorder

NS_PER_S = 1_000_000_000


def record_ns(rec: Recorder, keys: list[int], values: list[tuple[int, int, int, int]]) -> float:
    """ns per ``record_row`` + ``record_lag_row`` pair (what one request costs on the hot path)."""
    record, record_lag = rec.record_row, rec.record_lag_row
    started = time.perf_counter_ns()
    for (done_ns, latency_us, service_us, intended_ns), key in zip(values, keys, strict=True):
        record_lag((done_ns, 3))
        record((key, done_ns, latency_us, service_us, intended_ns))
    return (time.perf_counter_ns() - started) / len(values)


def record_sliced(
    rec: Recorder, keys: list[int], values: list[tuple[int, int, int, int]], slice_rows: int
) -> list[int]:
    """Record as ``record_ns`` does, calling ``fold_pending`` whenever ``slice_rows`` rows are
    pending; the ns each of those folds took."""
    record, record_lag, folds = rec.record_row, rec.record_lag_row, []
    for (done_ns, latency_us, service_us, intended_ns), key in zip(values, keys, strict=True):
        record_lag((done_ns, 3))
        record((key, done_ns, latency_us, service_us, intended_ns))
        if rec.pending_rows >= slice_rows:
            started = time.perf_counter_ns()
            rec.fold_pending()
            folds.append(time.perf_counter_ns() - started)
    return folds


def median(values: Sequence[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-interval", type=int, default=100_000, help="completions per 1 s")
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--keys", type=int, default=10, help="(op, priority, outcome) keys")
    parser.add_argument(
        "--slice-rows", type=int, default=8192, help="fold_pending at this many pending rows"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    rec, sliced = Recorder(NS_PER_S), Recorder(NS_PER_S)
    key_ids = [
        rec.key("approval", 1 + i % 5, ("ok", "refused")[i // 5 % 2]) for i in range(args.keys)
    ]
    for i in range(args.keys):
        sliced.key("approval", 1 + i % 5, ("ok", "refused")[i // 5 % 2])
    n = args.per_interval
    hot, fold, stalls = [], [], []
    slice_folds: list[list[float]] = []  # ms, every fold_pending, by interval
    slice_closes: list[float] = []  # ms
    slice_total: list[float] = []  # ns per request: the slices and the close
    for interval in range(args.intervals):
        base = interval * NS_PER_S
        values = []
        for i in range(n):
            done_ns, latency_us = base + i * (NS_PER_S // n), int(rng.lognormvariate(6, 1))
            intended_ns = max(0, done_ns - latency_us * 1000)
            values.append((done_ns, latency_us, int(rng.lognormvariate(5.5, 1)), intended_ns))
        keys = [key_ids[rng.randrange(len(key_ids))] for _ in range(n)]
        hot.append(record_ns(rec, keys, values))
        started = time.perf_counter_ns()
        rec.close_until(base + NS_PER_S)
        rec.seal_cohorts(
            lambda _: 0, interval
        )  # as the Engine does at a close (these are complete)
        elapsed = time.perf_counter_ns() - started
        fold.append(elapsed / n)
        stalls.append(elapsed / 1e6)
        folds = record_sliced(sliced, keys, values, args.slice_rows)
        started = time.perf_counter_ns()
        sliced.close_until(base + NS_PER_S)
        sliced.seal_cohorts(lambda _: 0, interval)
        elapsed = time.perf_counter_ns() - started
        slice_folds.append([ns / 1e6 for ns in folds])
        slice_closes.append(elapsed / 1e6)
        slice_total.append((sum(folds) + elapsed) / n)
    hist = Histogram()
    samples = [int(rng.lognormvariate(6, 1)) for _ in range(200_000)]
    started = time.perf_counter_ns()
    for value in samples:
        hist.record(value)
    one_by_one = (time.perf_counter_ns() - started) / len(samples)
    hot_ns, fold_ns = median(hot), median(fold)
    slice_ms = [ms for folds_ms in slice_folds for ms in folds_ms]
    largest_ms = [max(folds_ms, default=0.0) for folds_ms in slice_folds]
    print(
        f"{n} completions per 1 s interval, {args.keys} keys, median of {args.intervals} intervals"
    )
    print(f"hot path  record_row + record_lag_row    {hot_ns:7.0f} ns per request")
    print(f"fold      close_until, per value         {fold_ns:7.0f} ns per request")
    print(f"total     recording                      {hot_ns + fold_ns:7.0f} ns per request")
    print(
        f"stall     one fold of an interval        {median(stalls):7.1f} ms (max {max(stalls):.1f})"
    )
    print(
        f"sliced    fold_pending at {args.slice_rows} pending rows "
        f"({len(slice_ms) / args.intervals:.0f} per interval), then close_until at the boundary"
    )
    print(f"fold      slices + close, per value      {median(slice_total):7.0f} ns per request")
    print(
        f"stall     one fold_pending               {median(slice_ms or [0.0]):7.2f} ms "
        f"(largest of an interval {median(largest_ms):.2f}, max {max(largest_ms):.2f})"
    )
    print(
        f"stall     close after the slices         {median(slice_closes):7.2f} ms (max {max(slice_closes):.2f})"
    )
    print(
        f"compare   Histogram.record one by one    {one_by_one:7.0f} ns per value (one histogram)"
    )


if __name__ == "__main__":
    main()
