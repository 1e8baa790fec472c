"""Text for validation: every field of a run's validation, and the suite's table.

Pure: dicts in, text out. Numbers print with up to six significant figures, booleans as
yes / no, and a figure that could not be measured as ``n/a`` (never 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zg_load.validation import SECTIONS


def fmt(value: Any) -> str:
    """One value as text: n/a, yes/no, a short number, or ``k=v`` pairs for a mapping."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e12 else f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "none"
    return str(value)


def render_validation(validation: Mapping[str, Any], indent: str = "  ") -> str:
    """Every field of every section, then time to detect and the resilience factors."""
    lines = []
    for name in SECTIONS:
        section = validation.get(name)
        if section is None:
            continue
        lines.append(f"{indent}{name}")
        width = max(len(k) for k in section)
        lines += [f"{indent}  {k:<{width}}  {fmt(v)}" for k, v in section.items()]
    if "time_to_detect_s" in validation:
        by = fmt(validation.get("time_to_detect_by_section"))
        lines.append(f"{indent}time to detect  {fmt(validation['time_to_detect_s'])} s ({by})")
    resilience = validation.get("resilience")
    if resilience:
        factors = fmt(resilience["factors"])
        lines.append(f"{indent}resilience  {fmt(resilience['score'])} ({factors})")
    return "\n".join(lines) + "\n"


def render_suite(report: Mapping[str, Any]) -> str:
    """The suite's table (one row per scenario), each scenario's validation, the score."""
    rows: Sequence[Mapping[str, Any]] = list(report["detailed_results"].values())
    head = f"{'scenario':<22} {'status':<10} {'checks':>9} {'time':>8} {'resilience':>11}"
    lines = [head, "-" * len(head), *(_row(r) for r in rows)]
    for r in rows:
        lines.append("")
        lines.append(f"{r['scenario']}: {r['status']}")
        if r["status"] != "completed":
            lines.append(f"  error: {r.get('error')}")
            continue
        lines.append(render_validation(r["results"]).rstrip("\n"))
        failed = [c for c in r["checks"] if c["passed"] is False]
        lines += [f"  FAILED check {c['name']}: {c['note']}" for c in failed]
        lines.append(f"  run directory: {r['run_dir']}")
    lines.append("")
    done, total = report["completed_scenarios"], report["total_scenarios"]
    lines.append(
        f"resilience score  {fmt(report['resilience_score'])} ({done} of {total} completed)"
    )
    verdict = "every check passed" if report["passed"] else "FAILED"
    lines.append(f"suite             {verdict}")
    return "\n".join(lines) + "\n"


def _row(r: Mapping[str, Any]) -> str:
    if r["status"] != "completed":
        return f"{r['scenario']:<22} {r['status']:<10} {'-':>9} {'-':>8} {'-':>11}"
    checks = [c for c in r["checks"] if c["passed"] is not None]
    passed = sum(1 for c in checks if c["passed"])
    score = r["results"]["resilience"]["score"]
    status = "passed" if r["passed"] else "FAILED"
    time_s = f"{r['execution_time']:.1f} s"
    return f"{r['scenario']:<22} {status:<10} {f'{passed}/{len(checks)}':>9} {time_s:>8} {fmt(score):>11}"
