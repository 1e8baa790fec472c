"""Start the reference AI Ops service in its own process on 127.0.0.1, for one run.

The child prints ``zg-load serve: listening on URL`` and ``zg-load serve: admin token
TOKEN`` when it is ready; we read those two lines, and stop it with SIGTERM at the end
(SIGKILL if it does not exit within a few seconds). It ignores SIGINT: a Ctrl-C is for us.
Its ledger is a SQLite file in memory-backed /dev/shm where the machine has one (else in the
temporary directory): the reference service's latency must not depend on the machine's
disk. On a disk busy writing back 3 GB, its writes stalled for seconds and the storm
scenario's priority-5 p99 read 5 s instead of 137 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from zg_load.interrupts import sigint_ignored
from zg_load.scenario import ServiceSpec

READY_PREFIX = "zg-load serve: listening on "
TOKEN_PREFIX = "zg-load serve: admin token "


class EmbeddedError(RuntimeError):
    pass


@dataclass
class EmbeddedService:
    url: str
    token: str | None
    process: subprocess.Popen[str]
    db_dir: tempfile.TemporaryDirectory[str] | None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        if self.db_dir is not None:
            self.db_dir.cleanup()


def service_args(spec: ServiceSpec) -> list[str]:
    args: list[str] = []
    if spec.approval_workers is not None:
        args += ["--workers", str(spec.approval_workers)]
    if spec.approval_service_time_s is not None:
        args += ["--service-time-ms", repr(spec.approval_service_time_s * 1000.0)]
    if spec.queue_bound is not None:
        args += ["--queue-bound", str(spec.queue_bound)]
    if spec.max_queue_wait_s is not None:
        args += ["--max-queue-wait-ms", repr(spec.max_queue_wait_s * 1000.0)]
    if spec.time_scale is not None:
        args += ["--time-scale", repr(spec.time_scale)]
    if spec.seed is not None:
        args += ["--seed", str(spec.seed)]
    for defect in spec.defects:
        args += ["--defect", defect]
    return args


def _read_lines(proc: subprocess.Popen[str], n: int, timeout_s: float) -> list[str]:
    lines: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for _ in range(n):
            line = proc.stdout.readline()
            if not line:
                return
            lines.append(line.strip())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout_s)
    return lines


def start_embedded(
    spec: ServiceSpec, db: Path | None = None, timeout_s: float = 20.0
) -> EmbeddedService:
    """Start the reference service on a free port; raise EmbeddedError if it does not come up."""
    db_dir = None
    if db is None:
        db_dir = tempfile.TemporaryDirectory(prefix="zg-load-aiops-", dir=_memory_dir())
        db = Path(db_dir.name) / "ledger.sqlite3"
    cmd = [
        sys.executable,
        "-m",
        "zg_load.aiops",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db),
    ]
    with sigint_ignored():  # a Ctrl-C in the terminal is for zg-load, which stops us
        proc = subprocess.Popen(
            cmd + service_args(spec), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    lines = _read_lines(proc, 2, timeout_s)
    url = next((ln[len(READY_PREFIX) :] for ln in lines if ln.startswith(READY_PREFIX)), None)
    token = next((ln[len(TOKEN_PREFIX) :] for ln in lines if ln.startswith(TOKEN_PREFIX)), None)
    if url is None:
        service = EmbeddedService("", None, proc, db_dir)
        service.stop()
        err = ""
        if proc.stderr is not None and not proc.stderr.closed:
            err = proc.stderr.read()[-500:]
        raise EmbeddedError(f"the embedded reference service did not start: {err.strip() or lines}")
    # Nobody reads the child's output during the run; keep its pipes from filling.
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=_drain, args=(stream,), daemon=True).start()
    return EmbeddedService(url, token, proc, db_dir)


def _memory_dir() -> str | None:
    """/dev/shm when it is a writable directory; None: the default temporary directory."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _drain(stream: object) -> None:
    try:
        for _ in stream:  # type: ignore[attr-defined]
            pass
    except (ValueError, OSError):
        return
