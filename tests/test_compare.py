"""Run-vs-run comparison: synthetic interval histograms with known shifts, and real runs
of the embedded service (the same build twice; a build with 4x the service time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zg_load.cli import cli
from zg_load.cli_reports import compare
from zg_load.compare import Thresholds, _verdict, compare_groups, parse_thresholds
from zg_load.hdr import Histogram
from zg_load.report_formats import (
    render_comparison_json,
    render_comparison_markdown,
    render_comparison_text,
)

GOLDEN = Path(__file__).parent / "golden"
SMOKE = Path(__file__).parent.parent / "scenarios" / "smoke.toml"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZG_LOAD_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def intervals(scale: float, seed: int, n: int = 20, per: int = 500) -> list[Histogram]:
    """``n`` interval histograms of lognormal latencies around 10 ms, times ``scale``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = Histogram()
        h.record_many((rng.lognormal(np.log(10_000), 0.5, per) * scale).astype(np.int64))
        out.append(h)
    return out


def verdicts(scale: float) -> list[str]:
    cmp = compare_groups(
        {("approval", 5): [intervals(1.0, 1)]}, {("approval", 5): [intervals(scale, 2)]}
    )
    return [c.verdict for c in cmp.changes]


def test_same_distribution_is_no_change() -> None:
    assert verdicts(1.0) == ["no change"] * 4


def test_thirty_percent_slower_is_a_regression() -> None:
    v = verdicts(1.3)
    assert v[:3] == ["regression"] * 3 and v[3] in ("regression", "no change")


def test_thirty_percent_faster_is_an_improvement() -> None:
    assert verdicts(0.7) == ["improvement"] * 4


def test_output_is_deterministic_for_a_seed() -> None:
    base = {("approval", 5): [intervals(1.0, 1)], ("approval", 1): [intervals(1.0, 3)]}
    cand = {("approval", 5): [intervals(1.3, 2)], ("approval", 1): [intervals(0.98, 4)]}
    cmp = compare_groups(base, cand, Thresholds(seed=7))
    golden("compare_synthetic.txt", render_comparison_text(cmp))
    golden("compare_synthetic.md", render_comparison_markdown(cmp, "compare.png"))
    golden("compare_synthetic.json", render_comparison_json(cmp))
    again = compare_groups(dict(reversed(base.items())), cand, Thresholds(seed=7))
    assert render_comparison_json(again) == render_comparison_json(cmp)
    assert cmp.verdict == "regression"
    assert [(c.op, c.priority) for c in cmp.regressions][0] == ("approval", 5)


@pytest.mark.parametrize(
    ("d_lo", "d_hi", "r_lo", "r_hi", "expected"),
    [
        (2.0, 4.0, 1.2, 1.4, "regression"),  # wholly above both thresholds
        (0.5, 4.0, 1.2, 1.4, "no change"),  # relative says yes, absolute not sure
        (2.0, 4.0, 1.05, 1.4, "no change"),  # absolute says yes, relative not sure
        (-4.0, -2.0, 0.6, 0.8, "improvement"),
        (-0.2, 0.2, 0.98, 1.02, "no change"),
    ],
)
def test_verdict_rule(d_lo: float, d_hi: float, r_lo: float, r_hi: float, expected: str) -> None:
    assert _verdict(d_lo, d_hi, r_lo, r_hi, 0.10, 1.0)[0] == expected


def test_too_few_samples_is_na_and_never_gates() -> None:
    cmp = compare_groups(
        {("approval", 5): [intervals(1.0, 1, n=2, per=20)]},
        {("approval", 5): [intervals(3.0, 2, n=2, per=20)]},
    )
    by_pct = {c.percentile: c for c in cmp.changes}
    assert by_pct[50.0].verdict == "regression"
    assert by_pct[99.9].verdict == "n/a" and "under 5,000" in by_pct[99.9].note
    missing = compare_groups({("approval", 3): [intervals(1.0, 1)]}, {})
    assert {c.verdict for c in missing.changes} == {"n/a"} and missing.verdict == "n/a"


def test_several_runs_per_side_widen_the_interval() -> None:
    one = compare_groups({("a", 1): [intervals(1.0, 1)]}, {("a", 1): [intervals(1.0, 2)]})
    runs = [intervals(s, i) for i, s in enumerate((0.9, 1.0, 1.1))]
    cands = [intervals(s, 10 + i) for i, s in enumerate((0.9, 1.0, 1.1))]
    many = compare_groups({("a", 1): runs}, {("a", 1): cands}, base_runs=3, cand_runs=3)
    width = lambda c: c.ratio_ci[1] - c.ratio_ci[0]  # noqa: E731
    assert width(many.changes[0]) > 2 * width(one.changes[0])
    assert many.verdict == "no change"


def test_thresholds_from_toml_with_rules() -> None:
    th = parse_thresholds(
        "relative = 0.2\npercentiles = [50, 99]\n[[rules]]\npriority = 5\nrelative = 0.05\n"
        "[[rules]]\npercentile = 99\nabsolute_ms = 3\n"
    )
    assert th.percentiles == (50.0, 99.0)
    assert th.band("approval", 5, 50.0) == (0.05, 1.0)
    assert th.band("approval", 4, 99.0) == (0.2, 3.0)
    with pytest.raises(ValueError, match="unknown threshold keys: relativ"):
        parse_thresholds("relativ = 0.1")


def _run(tmp: Path, name: str, scenario: Path) -> Path:
    out = tmp / name
    result = CliRunner().invoke(cli, ["run", str(scenario), "--out", str(out), "-q"])
    # 1 is a failed check: on a busy machine the generator's own lag check can fail; what
    # these tests compare is the run's latencies, which it still measured whole
    assert result.exit_code in (0, 1), result.output
    assert json.loads((out / "summary.json").read_text())["partial"] is False
    return out


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    slower = tmp / "smoke_slower.toml"
    slower.write_text(SMOKE.read_text() + '\n[service]\napproval_service_time = "20ms"\n')
    return {
        "a": _run(tmp, "a", SMOKE),
        "b": _run(tmp, "b", SMOKE),
        "slow": _run(tmp, "slow", slower),
    }


@pytest.mark.slow
def test_two_runs_of_the_same_build_are_no_change(smoke_runs: dict[str, Path]) -> None:
    result = CliRunner().invoke(compare, [str(smoke_runs["a"]), str(smoke_runs["b"])])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Verdict: NO CHANGE")


@pytest.mark.slow
def test_a_slower_service_is_a_regression(smoke_runs: dict[str, Path], tmp_path: Path) -> None:
    md, png = tmp_path / "comment.md", tmp_path / "compare.png"
    args = [
        str(smoke_runs["a"]),
        str(smoke_runs["slow"]),
        "--markdown",
        str(md),
        "--plot",
        str(png),
    ]
    result = CliRunner().invoke(compare, args)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("Verdict: REGRESSION")
    assert "REGRESSION" in next(
        line for line in result.stdout.splitlines() if "approval p5" in line
    )
    assert md.read_text().startswith("### zg-load compare: 🔴 regression")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_directory_of_runs_is_one_side(smoke_runs: dict[str, Path], tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for name in ("a", "b"):
        (base / name).symlink_to(smoke_runs[name])
    result = CliRunner().invoke(compare, [str(base), str(smoke_runs["slow"]), "--format", "json"])
    assert result.exit_code == 1
    assert '"base_runs": 2' in result.stdout


def test_compare_usage_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(compare, [str(tmp_path), str(tmp_path)])
    assert result.exit_code == 2 and "holds no summary.json" in result.stderr
    run = GOLDEN / "smoke"
    result = CliRunner().invoke(compare, [str(run), str(run), "--phase", "storm"])
    assert result.exit_code == 2 and "no phase storm" in result.stderr
    result = CliRunner().invoke(compare, [str(run), str(run), "--confidence", "2"])
    assert result.exit_code == 2 and "bad thresholds" in result.stderr


@pytest.mark.parametrize(("intervals", "per_interval"), [(1, 600), (2, 300), (10, 100)])
def test_identical_builds_with_few_intervals_are_no_change(
    intervals: int, per_interval: int
) -> None:
    # With few intervals, resampling intervals has almost no variance; the bootstrap
    # resamples requests then, and the intervals are widened for the many tests made.
    rng = np.random.default_rng(7)

    def side() -> list[list[Histogram]]:
        run = []
        for _ in range(intervals):
            h = Histogram()
            h.record_many([int(v) for v in rng.lognormal(np.log(20_000), 0.5, per_interval)])
            run.append(h)
        return [run]

    false_calls = 0
    for seed in range(20):
        cmp = compare_groups(
            {("approval", 5): side()}, {("approval", 5): side()}, Thresholds(seed=seed)
        )
        false_calls += any(c.verdict in ("regression", "improvement") for c in cmp.changes)
    assert false_calls == 0


@pytest.mark.parametrize(
    ("base", "cand", "worse"),
    [
        ((1000, 100, 0), (1000, 200, 0), {"refused"}),  # +10 points, far beyond noise
        ((1000, 100, 0), (1000, 130, 0), set()),  # +3 points: under the 5-point threshold
        ((10, 0, 0), (10, 2, 0), set()),  # +20 points on 10 requests: within 3 standard errors
        ((1000, 0, 0), (1000, 0, 80), {"failed"}),  # failures are judged the same way
        ((1000, 200, 0), (1000, 100, 0), set()),  # fewer refusals is not a regression
    ],
)
def test_refused_and_failed_shares(
    base: tuple[int, int, int], cand: tuple[int, int, int], worse: set[str]
) -> None:
    from zg_load.compare import compare_shares

    changes = compare_shares({("approval", 5): base}, {("approval", 5): cand}, 5.0)
    assert {c.kind for c in changes if c.worse} == worse
    assert [c.kind for c in changes] == ["refused", "failed"]
