"""Recording cost per request: ``Recorder.record`` on the hot path, the fold into HDR
histograms when an interval closes, and one-by-one ``Histogram.record`` for comparison.

  python benchmarks/bench_recording.py                 # 100,000 completions per interval
  python benchmarks/bench_recording.py --per-interval 60000 --intervals 20
"""

from __future__ import annotations

import argparse
import random
import time

from zg_load.hdr import Histogram
from zg_load.recorder import Recorder

NS_PER_S = 1_000_000_000


def record_ns(rec: Recorder, keys: list[int], values: list[tuple[int, int, int]]) -> float:
    """ns per ``record`` + ``record_lag`` pair (what one request costs on the hot path)."""
    record, record_lag = rec.record, rec.record_lag
    started = time.perf_counter_ns()
    for (done_ns, latency_us, service_us), key in zip(values, keys, strict=True):
        record_lag(done_ns, 3)
        record(key, done_ns, latency_us, service_us)
    return (time.perf_counter_ns() - started) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-interval", type=int, default=100_000, help="completions per 1 s")
    parser.add_argument("--intervals", type=int, default=10)
    parser.add_argument("--keys", type=int, default=10, help="(op, priority, outcome) keys")
    args = parser.parse_args()
    rng = random.Random(7)
    rec = Recorder(NS_PER_S)
    key_ids = [
        rec.key("approval", 1 + i % 5, ("ok", "refused")[i // 5 % 2]) for i in range(args.keys)
    ]
    n = args.per_interval
    hot, fold, stalls = [], [], []
    for interval in range(args.intervals):
        base = interval * NS_PER_S
        values = [
            (
                base + i * (NS_PER_S // n),
                int(rng.lognormvariate(6, 1)),
                int(rng.lognormvariate(5.5, 1)),
            )
            for i in range(n)
        ]
        keys = [key_ids[rng.randrange(len(key_ids))] for _ in range(n)]
        hot.append(record_ns(rec, keys, values))
        started = time.perf_counter_ns()
        rec.close_until(base + NS_PER_S)
        elapsed = time.perf_counter_ns() - started
        fold.append(elapsed / n)
        stalls.append(elapsed / 1e6)
    hist = Histogram()
    samples = [int(rng.lognormvariate(6, 1)) for _ in range(200_000)]
    started = time.perf_counter_ns()
    for value in samples:
        hist.record(value)
    one_by_one = (time.perf_counter_ns() - started) / len(samples)
    hot_ns, fold_ns = sorted(hot)[len(hot) // 2], sorted(fold)[len(fold) // 2]
    print(
        f"{n} completions per 1 s interval, {args.keys} keys, median of {args.intervals} intervals"
    )
    print(f"hot path  Recorder.record + record_lag   {hot_ns:7.0f} ns per request")
    print(f"fold      close_until, per value         {fold_ns:7.0f} ns per request")
    print(f"total     recording                      {hot_ns + fold_ns:7.0f} ns per request")
    print(
        f"stall     one fold of an interval        {sorted(stalls)[len(stalls) // 2]:7.1f} ms (max {max(stalls):.1f})"
    )
    print(
        f"compare   Histogram.record one by one    {one_by_one:7.0f} ns per value (one histogram)"
    )


if __name__ == "__main__":
    main()
