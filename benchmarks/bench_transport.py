"""zg_load's transports against wrk and Locust, side by side, on one loopback target.

The target (nginx if installed, else the built-in uvloop + httptools target) is pinned to
one core and every generator, one after the other, to another, for the same time, with
the same number of connections. Prints requests/s, the generator's CPU use, requests/s
per generator core (requests/s divided by the cores it used) and the ratios to wrk and
Locust. Then zg_load's Engine (open loop, approvals, full recording) per transport: its
ceiling (the highest rate at which it answers OK within 0.5 % of the requests, with
schedule lag p99 under 100 ms; searched in steps of 10 %) and runs at 50 % and 80 % of it
(admitted / requested, cores used, requests per CPU second, p99 latency and schedule lag).
With ``--repeat N`` the closed-loop generators run in N rounds (each once per round) and
keep their best run; a search step that falls behind is tried up to N times, and each run
at a fraction of the ceiling is made N times; every Engine run is printed.

The zg_load figures count the generator's own CPU over its measured window (start-up and
warm-up left out); wrk and Locust are counted over their whole process.

  python benchmarks/bench_transport.py                 # 10 s per generator
  python benchmarks/bench_transport.py --duration 5 --repeat 3 --install
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import loopback

HERE = Path(__file__).resolve().parent


@dataclass
class Figure:
    name: str
    rate: float | None  # requests/s; None: skipped
    cpu: float = 0.0  # generator cores used (CPU seconds / wall seconds)
    note: str = ""

    @property
    def per_core(self) -> float | None:
        if self.rate is None:
            return None
        return self.rate / max(self.cpu, 0.05) if self.cpu else self.rate


def timed(cmd: list[str], core: int | None, timeout_s: float) -> tuple[str, float, float]:
    """(stdout, wall seconds, CPU seconds) of a pinned child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        preexec_fn=loopback.pinned(core),
        cwd=HERE,
    )
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-1500:]}")
    return out.stdout, wall_s, cpu_s


def run_wrk(url: str, args: argparse.Namespace, core: int | None) -> Figure:
    if loopback.which("wrk") is None:
        return Figure("wrk", None, note="skipped: apt-get install wrk")
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration:g}s", url + "/"]
    out, wall_s, cpu_s = timed(cmd, core, args.duration + 30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    return Figure("wrk", float(found.group(1)), cpu_s / wall_s)


def run_zg(name: str, url: str, args: argparse.Namespace, core: int | None, *extra: str) -> Figure:
    cmd = [sys.executable, "gen_zg.py", *extra, "--url", url]
    cmd += ["--connections", str(args.connections), "--duration", str(args.duration)]
    out, _, _ = timed(cmd, core, args.duration + 60)
    result = json.loads(out.strip().splitlines()[-1])
    # the generator's own CPU over its measured window: start-up and warm-up left out
    note = (
        f"user {result['user_us_per_request']:.2f} us + system "
        f"{result['system_us_per_request']:.2f} us CPU per request, p99 {result['p99_us']} us"
    )
    return Figure(name, float(result["rate"]), float(result["cores"]), note)


def run_locust(url: str, args: argparse.Namespace, core: int | None) -> Figure:
    try:
        import locust  # noqa: F401
    except ImportError:
        return Figure("Locust FastHttpUser", None, note="skipped: pip install locust")
    with tempfile.TemporaryDirectory(prefix="zg-bench-locust-") as tmp:
        prefix = str(Path(tmp) / "run")
        cmd = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless"]
        cmd += ["-u", str(args.connections), "-r", str(args.connections), "--host", url]
        cmd += ["-t", f"{args.duration:g}s", "--csv", prefix, "--only-summary"]
        cmd += ["--loglevel", "ERROR", "--stop-timeout", "1"]
        _, wall_s, cpu_s = timed(cmd, core, args.duration + 60)
        with open(prefix + "_stats.csv", newline="") as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
    return Figure("Locust FastHttpUser", float(rows["Aggregated"]["Requests/s"]), cpu_s / wall_s)


def best(runs: list[Figure]) -> Figure:
    """The run with the highest rate: noise on a shared machine only ever slows a run."""
    measured = [f for f in runs if f.rate is not None]
    return max(measured, key=lambda f: f.rate or 0.0) if measured else runs[0]


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}x"


def show(figures: list[Figure]) -> None:
    wrk = next((f.per_core for f in figures if f.name == "wrk"), None)
    locust = next((f.per_core for f in figures if f.name.startswith("Locust")), None)
    print(
        f"{'generator':34} {'req/s':>9} {'cores':>6} {'req/s/core':>11} {'vs wrk':>7} {'vs Locust':>9}"
    )
    for f in figures:
        if f.rate is None:
            print(f"{f.name:34} {f.note}")
            continue
        per_core = f.per_core or 0.0
        print(
            f"{f.name:34} {f.rate:9.0f} {f.cpu:6.2f} {per_core:11.0f} "
            f"{ratio(f.per_core, wrk):>7} {ratio(f.per_core, locust):>9}  {f.note}"
        )


def run_engine(
    url: str, args: argparse.Namespace, core: int | None, transport: str, rate: int
) -> dict[str, Any]:
    cmd = [sys.executable, "gen_zg.py", "engine", "--url", url, "--transport", transport]
    cmd += ["--connections", "1024", "--duration", str(args.duration), "--rate", str(rate)]
    out, _, _ = timed(cmd, core, args.duration + 60)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


HELD = 0.995  # admitted / requested at or above this ...
HELD_LAG_P99_US = 100_000  # ... with schedule lag p99 under 100 ms: the rate is held


def held(r: dict[str, Any]) -> bool:
    """Every request sent on time and answered OK, within 0.5 %: failures do not count as
    held, nor does a backlog that grows (its lag would)."""
    lag = r["lag_p99_us"]
    return bool(r["ok_ratio"] >= HELD and lag is not None and lag < HELD_LAG_P99_US)


def open_loop(
    url: str, args: argparse.Namespace, core: int | None, closed: dict[str, float]
) -> None:
    """The Engine (open loop, approvals, full recording) per transport. Its ceiling is the
    highest rate it holds: first asked for the transport's closed-loop rate (far too much,
    it falls behind), then from what it achieved there in steps of 10 %, up while it holds
    (down until it holds). Then runs at fractions of the ceiling. Per core is requests
    completed per CPU second of the generator (its drain included)."""
    print("\nEngine, open loop, full recording (lag: schedule lag of the sends):")
    print(
        f"{'transport':10} {'requested/s':>11} {'achieved/s':>10} {'ok ratio':>8} {'cores':>6} "
        f"{'per core':>9} {'p99 us':>8} {'lag p99 us':>10}"
    )

    def step(transport: str, rate: int, label: str) -> bool:
        """A search step holds if one of up to ``--repeat`` runs holds (a run that falls
        behind is tried again); a run at a fraction of the ceiling runs ``--repeat`` times.
        Every run is printed."""
        searching = not label.endswith("of the ceiling")
        ok = False
        for _ in range(args.repeat):
            r = run_engine(url, args, core, transport, rate)
            ok = held(r)
            verdict = (", holds" if ok else ", falls behind") if searching else ""
            print(
                f"{transport:10} {rate:11d} {r['rate']:10.0f} {r['ok_ratio']:8.4f} "
                f"{r['cores']:6.2f} {r['per_core']:9.0f} "
                f"{r['p99_us']!s:>8} {r['lag_p99_us']!s:>10}  {label}{verdict}",
                flush=True,
            )
            if searching and ok:
                break
        return ok

    for transport, closed_rate in closed.items():
        achieved = run_engine(url, args, core, transport, round(closed_rate))["rate"]
        print(f"{transport:10} asked for {closed_rate:.0f}/s (closed-loop rate): {achieved:.0f}/s")
        rate, ceiling, failed = round(achieved), 0, False
        going_up: bool | None = None
        for _ in range(8):
            ok = step(transport, rate, "search")
            failed = failed or not ok
            if ok:
                ceiling = max(ceiling, rate)
            if going_up is None:
                going_up = ok
            if ok != going_up or (not going_up and ok):
                break
            rate = round(rate * (1.1 if going_up else 0.9))
        if not ceiling:
            print(f"{transport:10} no rate held")
            continue
        bound = "" if failed else " (at least: no step failed)"
        print(f"{transport:10} ceiling: {ceiling} requests/s held{bound}")
        for fraction in args.fractions:
            step(transport, round(ceiling * fraction), f"{fraction:.0%} of the ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per generator")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per generator, in rounds; best kept (Engine: see above)",
    )
    parser.add_argument("--target", choices=["auto", "nginx", "builtin"], default="auto")
    parser.add_argument("--install", action="store_true", help="apt-get install nginx if missing")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.5, 0.8])
    args = parser.parse_args()
    if args.install and not os.path.exists(loopback.NGINX):
        loopback.install_nginx()
    kind = loopback.pick_target(args.target)
    gen_core, target_core = loopback.cores()
    if gen_core == target_core:
        print("one core only: generator and target share it (figures are not comparable)")
        gen_core = target_core = None  # type: ignore[assignment]
    print(f"{date.today()} {platform.node()} {platform.processor() or platform.machine()}")
    print(f"target {kind} on core {target_core}, generators on core {gen_core}, ", end="")
    print(f"{args.connections} connections, {args.duration:g} s each, best of {args.repeat}\n")
    generators = [
        ("wrk", lambda url: run_wrk(url, args, gen_core)),
        (
            "zg_load fast, raw send",
            lambda url: run_zg("zg_load fast (raw send)", url, args, gen_core, "raw"),
        ),
        (
            "zg_load fast, client",
            lambda url: run_zg(
                "zg_load fast (AIOpsClient)", url, args, gen_core, "client", "--transport", "fast"
            ),
        ),
        (
            "zg_load aiohttp, client",
            lambda url: run_zg(
                "zg_load aiohttp (AIOpsClient)",
                url,
                args,
                gen_core,
                "client",
                "--transport",
                "aiohttp",
            ),
        ),
        (
            "aiohttp bare",
            lambda url: run_zg(
                "aiohttp alone (no zg_load code)",
                url,
                args,
                gen_core,
                "client",
                "--transport",
                "aiohttp-bare",
            ),
        ),
        ("locust", lambda url: run_locust(url, args, gen_core)),
    ]
    with loopback.start_target(kind, target_core) as url:
        # Round by round, every generator once per round: a slow spell of the machine
        # falls on all of them, not on one generator's runs.
        runs: list[list[Figure]] = [[] for _ in generators]
        for _ in range(args.repeat):
            for kept, (_, run) in zip(runs, generators, strict=True):
                kept.append(run(url))
        figures = [best(kept) for kept in runs]
        show(figures)
        closed = {"fast": figures[1].rate, "aiohttp": figures[3].rate}
        if args.fractions:
            open_loop(url, args, gen_core, {k: v for k, v in closed.items() if v})


if __name__ == "__main__":
    main()
