"""Run-vs-run comparison: did the candidate get slower, for whom, and how sure are we?

Owns the statistics and the verdict; pure (histograms in, a frozen Comparison out).
For each (operation, priority) and percentile it estimates the change from base to
candidate with a bootstrap confidence interval over the *interval histograms* of each
side: intervals are resampled with replacement and merged, and the percentile of the
merged resample is taken. With several runs per side the bootstrap is two-level
(resample runs, then intervals within each chosen run), so run-to-run noise counts too.
Resampling whole intervals keeps the correlation between neighbouring requests.

The verdict rule, for thresholds (relative R, absolute A ms) and confidence C:
- regression:  the lower C-bound of the relative change is above +R *and* the lower
  C-bound of the absolute change is above +A ms;
- improvement: the upper C-bounds are below -R and -A ms;
- no change:   anything else (the interval touches the band [-R, +R] or [-A, +A]);
- n/a:         too few samples on a side to estimate the percentile (fewer than
  ``min_tail`` values beyond it), or no samples at all; never gates.
R is never taken below the HDR precision floor (two units of the histograms' relative
precision, 0.2 % at 3 significant figures): smaller changes cannot be told apart.
Guarantees: the same inputs and seed give the same output, byte for byte.
"""

from __future__ import annotations

import math
import tomllib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from zg_load.hdr import Histogram

Verdict = Literal["regression", "improvement", "no change", "n/a"]
Group = tuple[str, int]  # (operation, priority)
Side = Sequence[Sequence[Histogram]]  # runs -> interval histograms of one group
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_FloatArray = np.ndarray[Any, np.dtype[np.float64]]

MIN_INTERVALS = 10  # below this, the bootstrap resamples requests, not intervals


@dataclass(frozen=True)
class Rule:
    """A threshold override for matching groups and percentiles (None matches any)."""

    relative: float | None = None
    absolute_ms: float | None = None
    op: str | None = None
    priority: int | None = None
    percentile: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """What counts as a change, how sure we must be, and how the bootstrap runs."""

    relative: float = 0.10
    absolute_ms: float = 1.0
    confidence: float = 0.95
    percentiles: tuple[float, ...] = PERCENTILES
    resamples: int = 1000
    seed: int = 0
    min_tail: int = 5
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be within [0.5, 1), got {self.confidence}")
        if self.relative < 0 or self.absolute_ms < 0:
            raise ValueError("thresholds must be >= 0")
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {self.resamples}")
        for p in self.percentiles:
            if not 0.0 < p < 100.0:
                raise ValueError(f"percentiles must be within (0, 100), got {p}")

    def band(self, op: str, priority: int, percentile: float) -> tuple[float, float]:
        """(relative, absolute_ms) for one comparison: the last matching rule wins."""
        rel, abs_ms = self.relative, self.absolute_ms
        for r in self.rules:
            if (
                (r.op is None or r.op == op)
                and (r.priority is None or r.priority == priority)
                and (r.percentile is None or r.percentile == percentile)
            ):
                rel = rel if r.relative is None else r.relative
                abs_ms = abs_ms if r.absolute_ms is None else r.absolute_ms
        return rel, abs_ms


_TOP_KEYS = {
    "relative",
    "absolute_ms",
    "confidence",
    "percentiles",
    "resamples",
    "seed",
    "min_tail",
}
_RULE_KEYS = {"relative", "absolute_ms", "op", "priority", "percentile"}


def parse_thresholds(text: str, base: Thresholds | None = None) -> Thresholds:
    """Thresholds from TOML: top-level keys as ``Thresholds`` fields, plus ``[[rules]]``.

    Example::

        relative = 0.10        # 10 %
        absolute_ms = 1.0
        percentiles = [50, 99, 99.9]
        [[rules]]              # priority 5 is held to 5 % at every percentile
        priority = 5
        relative = 0.05
    """
    data = tomllib.loads(text)
    unknown = set(data) - _TOP_KEYS - {"rules"}
    if unknown:
        raise ValueError(f"unknown threshold keys: {', '.join(sorted(unknown))}")
    fields: dict[str, Any] = {k: data[k] for k in _TOP_KEYS & set(data)}
    if "percentiles" in fields:
        fields["percentiles"] = tuple(float(p) for p in fields["percentiles"])
    rules = []
    for i, raw in enumerate(data.get("rules", [])):
        bad = set(raw) - _RULE_KEYS
        if bad:
            raise ValueError(f"rules[{i}]: unknown keys: {', '.join(sorted(bad))}")
        if "percentile" in raw:
            raw = {**raw, "percentile": float(raw["percentile"])}
        rules.append(Rule(**raw))
    return replace(base or Thresholds(), **fields, rules=tuple(rules))


@dataclass(frozen=True)
class Change:
    """One (operation, priority, percentile): both estimates, the change with its CI."""

    op: str
    priority: int
    percentile: float
    base_count: int
    cand_count: int
    base_ms: float | None
    cand_ms: float | None
    diff_ms: float | None
    diff_ci_ms: tuple[float, float] | None
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    relative: float  # the threshold band used (after the precision floor)
    absolute_ms: float
    verdict: Verdict
    note: str


@dataclass(frozen=True)
class Comparison:
    changes: tuple[Change, ...]
    thresholds: Thresholds
    base_runs: int
    cand_runs: int

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.verdict == "regression")

    @property
    def verdict(self) -> Verdict:
        """regression if any; else improvement if any; else no change (n/a if nothing compared)."""
        found = {c.verdict for c in self.changes}
        order: tuple[Verdict, ...] = ("regression", "improvement", "no change")
        for v in order:
            if v in found:
                return v
        return "n/a"


def compare_groups(
    base: Mapping[Group, Side],
    cand: Mapping[Group, Side],
    thresholds: Thresholds | None = None,
    base_runs: int = 1,
    cand_runs: int = 1,
) -> Comparison:
    """Compare every group present on either side, at every percentile of ``thresholds``."""
    th = thresholds or Thresholds()
    groups = sorted(set(base) | set(cand), key=lambda g: (g[0], -g[1]))
    # Many percentiles x groups are tested at once: widen each interval (Bonferroni) so
    # the chance of any false verdict stays at 1 - confidence for the whole comparison.
    tests = max(1, len(groups) * len(th.percentiles))
    each = replace(th, confidence=1.0 - (1.0 - th.confidence) / tests)
    changes: list[Change] = []
    for group in groups:
        changes += compare_group(group, base.get(group, ()), cand.get(group, ()), each)
    return Comparison(tuple(changes), th, base_runs, cand_runs)


def compare_group(group: Group, base: Side, cand: Side, th: Thresholds) -> list[Change]:
    """The changes of one (operation, priority) at each percentile."""
    base_runs = [list(run) for run in base if any(h.count for h in run)]
    cand_runs = [list(run) for run in cand if any(h.count for h in run)]
    merged_b, merged_c = _merge_all(base_runs), _merge_all(cand_runs)
    floor = _precision_floor([*_flat(base_runs), *_flat(cand_runs)])
    grid = _Grid([*_flat(base_runs), *_flat(cand_runs)])
    rng = np.random.default_rng([th.seed, zlib.crc32(f"{group[0]}/{group[1]}".encode())])
    boot_b = grid.bootstrap(base_runs, th, rng) if base_runs else None
    boot_c = grid.bootstrap(cand_runs, th, rng) if cand_runs else None
    out = []
    for i, p in enumerate(th.percentiles):
        rel, abs_ms = th.band(group[0], group[1], p)
        rel = max(rel, floor)
        qb = None if boot_b is None else boot_b[i]
        qc = None if boot_c is None else boot_c[i]
        out.append(_change(group, p, merged_b, merged_c, qb, qc, rel, abs_ms, th))
    return out


def _change(
    group: Group,
    p: float,
    base: Histogram,
    cand: Histogram,
    boot_b: _FloatArray | None,
    boot_c: _FloatArray | None,
    rel: float,
    abs_ms: float,
    th: Thresholds,
) -> Change:
    b_us, c_us = base.percentile(p), cand.percentile(p)
    need = math.ceil(round(th.min_tail / (1.0 - p / 100.0), 6))
    short = [name for name, h in (("base", base), ("candidate", cand)) if h.count < need]
    empty = Change(
        op=group[0],
        priority=group[1],
        percentile=p,
        base_count=base.count,
        cand_count=cand.count,
        base_ms=_ms(b_us),
        cand_ms=_ms(c_us),
        diff_ms=None,
        diff_ci_ms=None,
        ratio=None,
        ratio_ci=None,
        relative=rel,
        absolute_ms=abs_ms,
        verdict="n/a",
        note=f"too few samples ({' and '.join(short) or 'a side'} under {need:,})",
    )
    if b_us is None or c_us is None or boot_b is None or boot_c is None or short:
        return empty
    alpha = (1.0 - th.confidence) / 2.0
    diff = (boot_c - boot_b) / 1000.0
    ratio = boot_c / np.maximum(boot_b, 1.0)
    d_lo, d_hi = (float(x) for x in np.quantile(diff, [alpha, 1.0 - alpha]))
    r_lo, r_hi = (float(x) for x in np.quantile(ratio, [alpha, 1.0 - alpha]))
    verdict, note = _verdict(d_lo, d_hi, r_lo, r_hi, rel, abs_ms)
    return replace(
        empty,
        diff_ms=round((c_us - b_us) / 1000.0, 3),
        diff_ci_ms=(round(d_lo, 3), round(d_hi, 3)),
        ratio=round(c_us / max(b_us, 1), 4),
        ratio_ci=(round(r_lo, 4), round(r_hi, 4)),
        verdict=verdict,
        note=note,
    )


def _verdict(
    d_lo: float, d_hi: float, r_lo: float, r_hi: float, rel: float, abs_ms: float
) -> tuple[Verdict, str]:
    if r_lo - 1.0 > rel and d_lo > abs_ms:
        return "regression", "slower beyond both thresholds"
    if r_hi - 1.0 < -rel and d_hi < -abs_ms:
        return "improvement", "faster beyond both thresholds"
    inside = (r_hi - 1.0 <= rel or d_hi <= abs_ms) and (r_lo - 1.0 >= -rel or d_lo >= -abs_ms)
    return (
        "no change",
        "within thresholds" if inside else "inconclusive: interval crosses a threshold",
    )


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


def _flat(runs: Sequence[Sequence[Histogram]]) -> list[Histogram]:
    return [h for run in runs for h in run]


def _merge_all(runs: Sequence[Sequence[Histogram]]) -> Histogram:
    merged = Histogram()
    for h in _flat(runs):
        merged.merge(h)
    return merged


def _precision_floor(hists: Sequence[Histogram]) -> float:
    """Two units of relative precision: changes below it are inside HDR's rounding."""
    digits = min((h.significant_figures for h in hists), default=3)
    return 2.0 * 10.0**-digits


class _Grid:
    """Every interval histogram as a count vector over the union of their buckets, so a
    bootstrap resample is a weighted sum (one matrix product) instead of many merges."""

    def __init__(self, hists: Sequence[Histogram]) -> None:
        values = sorted({high for h in hists for _, high, _ in h.buckets()})
        self.values_us = np.asarray(values, dtype=np.float64)
        self._column = {v: i for i, v in enumerate(values)}

    def counts(self, runs: Sequence[Sequence[Histogram]]) -> np.ndarray[Any, Any]:
        rows = np.zeros((sum(len(r) for r in runs), len(self._column)), dtype=np.float64)
        for i, h in enumerate(_flat(runs)):
            for _, high, n in h.buckets():
                rows[i, self._column[high]] += n
        return rows

    def bootstrap(
        self, runs: Sequence[Sequence[Histogram]], th: Thresholds, rng: np.random.Generator
    ) -> _FloatArray:
        """(percentile, resample) values in µs: two-level when there are several runs.

        With fewer than ``MIN_INTERVALS`` intervals in all, resampling intervals has almost
        no variance (one interval resamples to itself), so requests are resampled instead
        (multinomial over the merged buckets)."""
        counts = self.counts(runs)
        sizes = [len(r) for r in runs]
        if sum(sizes) < MIN_INTERVALS:
            merged = counts.sum(axis=0)
            total = int(merged.sum())
            drawn = rng.multinomial(total, merged / max(total, 1), size=th.resamples)
            cumulative = np.cumsum(drawn.astype(np.float64), axis=1)
            return np.stack([self._at(cumulative, p) for p in th.percentiles])
        offsets = np.cumsum([0, *sizes[:-1]])
        weights = np.zeros((th.resamples, counts.shape[0]), dtype=np.float64)
        rows = np.arange(th.resamples)
        picked = rng.integers(0, len(runs), size=(th.resamples, len(runs)))
        for slot in range(len(runs)):
            run = picked[:, slot]
            size = np.asarray(sizes)[run]
            for k in range(max(sizes)):
                within = (rng.random(th.resamples) * size).astype(np.int64)
                take = k < size
                np.add.at(weights, (rows[take], (offsets[run] + within)[take]), 1.0)
        cumulative = np.cumsum(weights @ counts, axis=1)
        return np.stack([self._at(cumulative, p) for p in th.percentiles])

    def _at(self, cumulative: np.ndarray[Any, Any], p: float) -> _FloatArray:
        total = cumulative[:, -1]
        rank = np.clip(np.ceil(math.nextafter(p, -math.inf) * total / 100.0), 1, None)
        index = (cumulative < rank[:, None]).sum(axis=1)
        return np.asarray(self.values_us[np.minimum(index, self.values_us.size - 1)])


# -- refused and failed shares -------------------------------------------------------------

ShareCounts = dict[Group, tuple[int, int, int]]  # (requests, refused, failed) per group


@dataclass(frozen=True)
class ShareChange:
    """How the share of refused (or failed) requests of one group moved."""

    op: str
    priority: int
    kind: str  # "refused" or "failed"
    base_share: float | None
    cand_share: float | None
    base_requests: int
    cand_requests: int
    worse: bool


def compare_shares(
    base: ShareCounts, cand: ShareCounts, threshold_points: float
) -> list[ShareChange]:
    """Refused and failed shares per group. Worse: the candidate's share is higher by more than
    ``threshold_points`` percentage points and by more than 3 standard errors (so a handful
    of requests cannot make a verdict). A faster build that sheds more is not better."""
    out = []
    for group in sorted(set(base) | set(cand), key=lambda g: (g[0], -g[1])):
        nb, *b_counts = base.get(group, (0, 0, 0))
        nc, *c_counts = cand.get(group, (0, 0, 0))
        for kind, xb, xc in zip(("refused", "failed"), b_counts, c_counts, strict=True):
            pb = xb / nb if nb else None
            pc = xc / nc if nc else None
            worse = False
            if pb is not None and pc is not None:
                se = math.sqrt(pb * (1 - pb) / nb + pc * (1 - pc) / nc)
                diff = pc - pb
                worse = diff > threshold_points / 100.0 and diff > 3.0 * se
            out.append(ShareChange(group[0], group[1], kind, pb, pc, nb, nc, worse))
    return out


def render_shares(changes: Sequence[ShareChange]) -> str:
    """The share table, text (also valid Markdown as a fenced block's content)."""
    lines = ["Refused and failed shares (all requests, not only admitted):"]
    for c in changes:
        if not (c.base_share or c.cand_share):
            continue
        b = "n/a" if c.base_share is None else f"{100 * c.base_share:.1f}%"
        k = "n/a" if c.cand_share is None else f"{100 * c.cand_share:.1f}%"
        mark = "  WORSE" if c.worse else ""
        lines.append(f"  {c.op} p{c.priority} {c.kind:<8} {b:>7} -> {k:>7}{mark}")
    if len(lines) == 1:
        lines.append("  none refused or failed on either side")
    return "\n".join(lines) + "\n"
