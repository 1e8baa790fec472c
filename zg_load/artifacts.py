"""The run directory: ``summary.json``, ``latency.hlog`` and ``report.txt``.

The interval log is written as intervals close, so an interrupted run keeps every
interval it finished. Files are written whole (temp file + rename) where they are
written once, so a crash never leaves a half summary.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from zg_load.hlog import format_header, format_interval, tag_for
from zg_load.recorder import IntervalStats

NS_PER_S = 1_000_000_000


def claim_run_dir(scenario_name: str, root: Path = Path("results")) -> Path:
    """Create and return a new run directory ``root/NAME-YYYYmmdd-HHMMSS[-N]``. Creating it
    is the claim: two runs started in the same second get two directories."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario_name) or "run"
    root.mkdir(parents=True, exist_ok=True)
    path, n = root / f"{safe}-{stamp}", 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = root / f"{safe}-{stamp}-{n}"


def check_run_dir(path: Path) -> Path:
    """Refuse a run directory that already holds a run or is not a directory (nothing is created)."""
    if (path / "summary.json").exists():
        raise FileExistsError(f"{path} already holds a run (summary.json); choose another --out")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} exists and is not a directory")
    return path


def write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> Path:
    """Pretty, key-sorted JSON, written whole."""
    # Insertion order, not sorted: reports re-rendered from the file list fields as the run did.
    write_whole(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    return write_json(run_dir / "summary.json", summary)


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json" if run_dir.is_dir() else run_dir
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


class HlogWriter:
    """Streams closed intervals to an HdrHistogram interval log, one line per tag."""

    def __init__(self, path: Path, start_epoch_s: float) -> None:
        self.path = path
        self._f: IO[str] = path.open("w", encoding="ascii")
        self._f.write("\n".join(format_header(start_epoch_s, start_epoch_s)) + "\n")
        self._f.flush()

    def write(self, stats: IntervalStats) -> None:
        start_s = stats.start_ns / NS_PER_S
        length_s = (stats.end_ns - stats.start_ns) / NS_PER_S
        for key in sorted(stats.latency):
            hist = stats.latency[key]
            self._f.write(format_interval(tag_for(key), start_s, length_s, hist) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
