"""Loopback targets and CPU pinning for the benchmarks (127.0.0.1 only).

``start_target`` runs nginx (when installed) or the built-in uvloop + httptools target
(``target.py``) in its own process, pinned to one core, answering every request with
``200 {}`` on keep-alive connections.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{{}}'; }}
    }}
}}
"""


def cores() -> tuple[int, int]:
    """(generator core, target core): the first and the last core this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[-1]


def pinned(core: int | None) -> Callable[[], None]:
    """A preexec_fn pinning the child to ``core`` (None: any core); the child gets SIGTERM
    if this process dies, so no target outlives its benchmark."""

    def setup() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if core is not None:
            os.sched_setaffinity(0, {core})

    return setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def install_nginx() -> None:
    """apt-get install nginx-light (only when asked: --install)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env)


def pick_target(requested: str) -> str:
    if requested == "auto":
        return "nginx" if os.path.exists(NGINX) else "builtin"
    if requested == "nginx" and not os.path.exists(NGINX):
        raise SystemExit(f"{NGINX} is not installed: run with --install, or --target builtin")
    return requested


@contextmanager
def start_target(kind: str, core: int | None) -> Iterator[str]:
    """Run the target pinned to ``core``; yields its base URL; stops it on exit."""
    port = free_port()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs
    with tempfile.TemporaryDirectory(prefix="zg-bench-") as tmp:
        if kind == "nginx":
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
            cmd = [NGINX, "-c", str(conf), "-p", tmp]
        else:
            cmd = [sys.executable, str(HERE / "target.py"), "--port", str(port)]
        proc = subprocess.Popen(cmd, preexec_fn=pinned(core), stdout=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def which(name: str) -> str | None:
    return shutil.which(name)
