"""The CLI in-process: exit codes, one-line errors, run directories, re-rendering."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from zg_load.cli import cli
from zg_load.client import Answer, HttpClient
from zg_load.hlog import parse_log

SMOKE = Path(__file__).parent.parent / "scenarios" / "smoke.toml"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relaxed_smoke(tmp_path: Path) -> Path:
    """The smoke scenario with a generous generator-lag limit: this test is about the run
    directory, and a busy test machine must not fail it through schedule lag."""
    path = tmp_path / "smoke.toml"
    path.write_text(SMOKE.read_text() + '\n[analysis]\nlag_p99_limit = "1s"\n')
    return path


def test_smoke_run_writes_a_complete_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, _ = invoke("run", str(relaxed_smoke(tmp_path)), "--out", str(out), "-q")
    assert code == 0, stdout
    summary = orjson.loads((out / "summary.json").read_bytes())
    acc = summary["accounting"]
    assert acc["identity_holds"] is True
    assert acc["intended"] == acc["sent"] == acc["ok"] == 100  # 2 s at 50/s
    assert (acc["not_sent"], acc["in_flight"], acc["error"], acc["timeout"]) == (0, 0, 0, 0)
    assert summary["passed"] is True and summary["partial"] is False
    # the interval log holds every completed request exactly once
    entries = parse_log((out / "latency.hlog").read_text())
    assert sum(e.hist.count for e in entries) == acc["ok"] + acc["refused"]
    assert (out / "report.txt").read_text() in stdout
    assert "identity holds" in stdout


def test_report_rerenders_from_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    invoke("run", str(SMOKE), "--out", str(out), "-q")
    code, stdout, _ = invoke("report", str(out))
    assert code == 0
    assert stdout == (out / "report.txt").read_text()
    code, stdout, _ = invoke("report", str(out), "--format", "json")
    assert orjson.loads(stdout)["accounting"]["ok"] == 100


def test_out_directory_that_holds_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    code, _, stderr = invoke("run", str(SMOKE), "--out", str(tmp_path))
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "already holds a run" in stderr


def test_dead_target_fails_fast_with_one_line_and_creates_nothing(tmp_path: Path) -> None:
    port = closed_port()
    out = tmp_path / "run"
    code, stdout, stderr = invoke(
        "run", str(SMOKE), "--target", f"http://127.0.0.1:{port}", "--out", str(out)
    )
    assert code == 2
    assert stderr.startswith(f"zg-load: cannot reach target http://127.0.0.1:{port}")
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1:8080", "bad --target '127.0.0.1:8080'"),
        ("ftp://127.0.0.1", "bad --target 'ftp://127.0.0.1'"),
    ],
)
def test_bad_target_url(target: str, message: str) -> None:
    code, _, stderr = invoke("run", str(SMOKE), "--target", target)
    assert code == 2 and message in stderr


BAD_RATE = """\
name = "bad"
[[mixes.m]]
op = "approval"
priority = 3
cost_usd = 0.01
task = "t"

[[phases]]
name = "p"
duration = "2s"
[[phases.streams]]
rate = "10/1x"
mix = "m"
"""


def test_bad_scenario_names_the_field_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD_RATE)
    for command in ("run", "validate"):
        code, _, stderr = invoke(command, str(path))
        assert code == 2
        assert stderr.startswith(f"zg-load: {path}:12: phases[0].streams[0].rate: bad rate '10/1x'")
        assert stderr.strip().count("\n") == 0


def test_missing_scenario_file(tmp_path: Path) -> None:
    code, _, stderr = invoke("run", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read scenario" in stderr and "No such file" in stderr


def test_validate_reports_planned_requests() -> None:
    code, stdout, _ = invoke("validate", str(SMOKE))
    assert code == 0
    assert "100 requests planned" in stdout


def test_help_has_examples() -> None:
    for command in ("run", "validate", "report"):
        code, stdout, _ = invoke(command, "--help")
        assert code == 0 and "Example" in stdout


class CountingClient(HttpClient):
    """A user's adapter, loaded by import path: counts the approvals it sends."""

    approvals = 0

    async def request_approval(
        self,
        task_description: str,
        estimated_cost: float,
        priority: int,
        agent_id: str | None = None,
    ) -> Answer:
        CountingClient.approvals += 1
        return await super().request_approval(task_description, estimated_cost, priority, agent_id)


def test_a_users_client_adapter_loads_by_import_path(tmp_path: Path) -> None:
    CountingClient.approvals = 0
    out = tmp_path / "run"
    code, stdout, _ = invoke(
        "run",
        str(relaxed_smoke(tmp_path)),
        "--out",
        str(out),
        "-q",
        "--client",
        f"{__name__}:CountingClient",
    )
    assert code == 0, stdout
    assert CountingClient.approvals == 100


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "bad client 'nope': expected 'module:Class'"),
        (
            "no_such_module_zz:X",
            "bad client 'no_such_module_zz:X': cannot import no_such_module_zz",
        ),
        (
            "zg_load.client:Nope",
            "bad client 'zg_load.client:Nope': zg_load.client has no class Nope",
        ),
    ],
)
def test_bad_client_spec(spec: str, message: str) -> None:
    code, _, stderr = invoke("run", str(SMOKE), "--client", spec)
    assert code == 2 and stderr.startswith(f"zg-load: {message}")


def test_report_and_compare_refuse_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{}")
    code, _, stderr = invoke("report", str(bad))
    assert code == 2 and "not a zg-load run" in stderr and "Traceback" not in stderr


def test_compare_refuses_runs_of_different_scenarios(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "golden" / "smoke"
    other = tmp_path / "other"
    other.mkdir()
    summary = orjson.loads((golden / "summary.json").read_bytes())
    summary["scenario"]["name"] = "not_smoke"
    (other / "summary.json").write_bytes(orjson.dumps(summary))
    (other / "latency.hlog").write_text((golden / "latency.hlog").read_text())
    code, _, stderr = invoke("compare", str(golden), str(other))
    assert code == 2
    assert "different scenarios (base: smoke; candidate: not_smoke)" in stderr


def test_ray_missing_is_one_line_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    code, _, stderr = invoke("run", str(SMOKE), "--ray")
    assert (
        code == 2
        and stderr.strip()
        == "zg-load: --ray needs Ray, which is not installed: pip install 'zg-load[ray]'"
    )


def test_fault_setups_without_the_admin_token_fail_before_any_load(tmp_path: Path) -> None:
    from zg_load.embedded import start_embedded
    from zg_load.scenario import ServiceSpec

    service = start_embedded(ServiceSpec())
    try:
        scenario = Path(__file__).parent.parent / "scenarios" / "model_downgrade.toml"
        out = tmp_path / "run"
        code, _, stderr = invoke(
            "run", str(scenario), "--target", service.url, "--out", str(out), "-q"
        )
    finally:
        service.stop()
    assert code == 2
    assert "phases outage, restored set faults, which needs the target's admin API" in stderr
    assert "HTTP 401" in stderr
    assert not out.exists()


def test_an_interrupt_before_the_load_is_noted_and_ends_the_run_at_the_next_check() -> None:
    import os
    import signal

    from zg_load.runner import RunError, _EarlyStop

    before = signal.getsignal(signal.SIGINT)
    with _EarlyStop() as early:
        early.check()  # nothing yet
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt from wherever it lands
        assert early.signalled
        with pytest.raises(RunError, match="interrupted before the load started: nothing was"):
            early.check()
    assert signal.getsignal(signal.SIGINT) is before


def test_the_embedded_service_leaves_a_ctrl_c_to_zg_load_and_stops_on_sigterm() -> None:
    import signal

    import anyio

    from zg_load.embedded import start_embedded
    from zg_load.scenario import ServiceSpec

    service = start_embedded(ServiceSpec())
    try:
        service.process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):  # still running a second later
            service.process.wait(1.0)

        async def health() -> Answer:
            client = HttpClient(service.url, timeout_s=5.0)
            try:
                return await client.health()
            finally:
                await client.aclose()

        assert anyio.run(health).ok
    finally:
        service.stop()
    assert service.process.returncode == 0  # SIGTERM: a clean stop, not a kill


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path: Path) -> None:
    from zg_load.artifacts import claim_run_dir

    claimed = [claim_run_dir("smoke", tmp_path) for _ in range(3)]  # within one second
    assert len(set(claimed)) == 3 and all(path.is_dir() for path in claimed)


def test_a_dead_target_leaves_no_default_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = invoke("run", str(SMOKE), "--target", f"http://127.0.0.1:{closed_port()}")
    assert code == 2 and "cannot reach target" in stderr
    assert list(tmp_path.iterdir()) == []  # no results/, no run directory


def test_more_workers_than_cpus_gets_a_note_before_anything_runs() -> None:
    import os

    workers = (os.cpu_count() or 1) + 1
    code, _, stderr = invoke(
        "run",
        str(SMOKE),
        "--workers",
        str(workers),
        "--target",
        f"http://127.0.0.1:{closed_port()}",
    )
    assert code == 2  # the dead target still fails fast, after the note
    assert f"note: --workers {workers} on {os.cpu_count()} CPU" in stderr


def test_compare_without_a_phase_on_a_run_of_several_loads_says_which_to_pick(
    tmp_path: Path,
) -> None:
    import shutil

    golden = Path(__file__).parent / "golden" / "smoke"
    run = tmp_path / "run"
    shutil.copytree(golden, run)
    summary = orjson.loads((run / "summary.json").read_bytes())
    calm = summary["phases"][0]
    storm = {**calm, "name": "burst", "role": "storm", "start_s": calm["duration_s"]}
    summary["phases"] = [{**calm, "role": "baseline"}, storm]
    (run / "summary.json").write_bytes(orjson.dumps(summary))
    _, _, stderr = invoke("compare", str(run), str(run))
    assert "note: the intervals of every phase (steady, burst) are compared together" in stderr
    assert "--phase burst compares one phase" in stderr
    _, _, stderr = invoke("compare", str(golden), str(golden))  # one phase: no note
    assert "compared together" not in stderr


def test_an_interrupt_once_the_engine_exists_stops_it_as_the_storm_handler_would() -> None:
    import os
    import signal

    import anyio

    from zg_load.runner import _EarlyStop

    class Target:
        def __init__(self) -> None:
            self.reasons: list[str] = []

        def stop(self, reason: str = "interrupted") -> None:
            self.reasons.append(reason)

    async def main() -> tuple[list[str], list[str]]:
        early_target, late_target = Target(), Target()
        with _EarlyStop() as early:
            os.kill(os.getpid(), signal.SIGINT)  # after the last check, before the engine
            early.forward_to(early_target)  # stopped at once
        with _EarlyStop() as late:
            late.forward_to(late_target)
            os.kill(os.getpid(), signal.SIGINT)  # before the storm's own handler is in
            await anyio.sleep(0.05)
        return early_target.reasons, late_target.reasons

    assert anyio.run(main) == (["interrupted"], ["interrupted"])


def test_a_ctrl_c_while_the_reports_are_written_keeps_the_run_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zg_load.runner

    def interrupted(run_dir: Path, summary: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(zg_load.runner, "write_run_reports", interrupted)
    out = tmp_path / "run"
    code, _, stderr = invoke("run", str(relaxed_smoke(tmp_path)), "--out", str(out), "-q")
    assert code == 1
    assert stderr.strip() == (
        f"zg-load: interrupted while writing the reports; the run is in {out}: "
        f"zg-load report {out} prints it (--format html writes report.html)"
    )
    assert (out / "summary.json").is_file() and (out / "latency.hlog").is_file()


def test_the_embedded_ledger_is_kept_off_the_disk_where_the_machine_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy disk must not stall the reference service: its ledger goes to /dev/shm."""
    import os

    from zg_load import embedded
    from zg_load.scenario import ServiceSpec

    if not os.path.isdir("/dev/shm"):
        pytest.skip("this machine has no /dev/shm")
    service = embedded.start_embedded(ServiceSpec())
    try:
        assert service.db_dir is not None
        folder = Path(service.db_dir.name)
        assert folder.parent == Path("/dev/shm") and (folder / "ledger.sqlite3").exists()
    finally:
        service.stop()
    assert not folder.exists()
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    assert embedded._memory_dir() is None  # then the default temporary directory
