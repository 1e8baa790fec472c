"""Scenario files: TOML text in, a validated, frozen `Scenario` out.

Owns the scenario file format (its fields, defaults and rules) and its error messages.
Pure: the caller reads the file. Guarantees: every problem, from a TOML syntax error to
an unknown field or a bad rate, is a `ScenarioError` with a one-line message
``<source>:<line>: <field.path>: <problem>``; a returned scenario has positive durations,
known operations and arrivals, mixes that exist, and the same Poisson seeds every time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import msgspec

from zg_load.checks import DEFAULT_CHECKS, Check, lag_check, parse_check
from zg_load.metric_names import unknown_metric, unknown_series
from zg_load.schedule import Arrival, ClosedLoop, Constant, Poisson, Ramp
from zg_load.units import UnitError, parse_duration, parse_rate

__all__ = [
    "KNOWN_OPERATIONS",
    "AnalysisSpec",
    "OpSpec",
    "Phase",
    "PhaseSetup",
    "Role",
    "Scenario",
    "ScenarioError",
    "ServiceSpec",
    "Stream",
    "TargetSetup",
    "parse_scenario",
]

KNOWN_OPERATIONS: tuple[str, ...] = (
    "approval",
    "task",
    "agent_task",
    "fallback_task",
    "conflict_check",
)
Role: TypeAlias = Literal["baseline", "storm", "recovery", "load"]
_ROLES: dict[str, Role] = {r: r for r in ("baseline", "storm", "recovery", "load")}
_ARRIVALS = ("constant", "poisson", "ramp", "closed")
_PRIORITIES = range(1, 6)
Path: TypeAlias = tuple[str | int, ...]


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is ``<source>:<line>: <path>: <problem>``."""


# --- the validated scenario -------------------------------------------------------------


@dataclass(frozen=True)
class OpSpec:
    """One entry of a mix: an operation, its weight and how its requests are drawn."""

    op: str
    weight: float
    priority_weights: tuple[tuple[int, float], ...]  # (priority, weight), by priority
    cost_usd: tuple[float, float]  # uniform range [lo, hi]; lo == hi for a fixed cost
    task: str
    agents: tuple[str, ...]
    task_type: str | None = None  # tasks: the task's type (default: the task text)
    model: str | None = None  # tasks: the model asked for (default: the service's chain)
    fallbacks: tuple[str, ...] | None = None  # tasks: the fallback chain after the model
    hallucinate_rate: float = 0.0  # tasks: share of tasks the generator makes hallucinate
    conflict_rate: float = 0.0  # conflict_check: share of checks with one dissenting agent
    correct: bool = False  # tasks: ask for a corrected output when flagged


@dataclass(frozen=True)
class Stream:
    """An arrival process (sized to its phase) drawing requests from the named mix."""

    arrival: Arrival | ClosedLoop
    mix: str


@dataclass(frozen=True)
class Phase:
    name: str
    role: Role
    duration_s: float
    streams: tuple[Stream, ...]
    setup: PhaseSetup | None = None


@dataclass(frozen=True)
class PhaseSetup:
    """Applied to the target when a phase starts (faults need the admin token)."""

    faults: Mapping[str, Any] | None = None  # merged into the service's faults, as given
    clear_faults: bool = False  # clear all faults first
    budget_usd: float | None = None
    soft_budget_usd: float | None = None


@dataclass(frozen=True)
class TargetSetup:
    """Applied to the target before the run; None leaves the target's setting alone."""

    budget_usd: float | None = None
    soft_budget_usd: float | None = None
    window: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """Options for the embedded reference service; None keeps the service's default."""

    approval_workers: int | None = None
    approval_service_time_s: float | None = None
    queue_bound: int | None = None
    max_queue_wait_s: float | None = None
    time_scale: float | None = None  # multiplies model latencies and breaker waits
    seed: int | None = None
    defects: tuple[str, ...] = ()  # deliberately broken behaviours, to prove checks can fail


@dataclass(frozen=True)
class AnalysisSpec:
    """Tolerances used by analysis and validation (see the scenario file format)."""

    adherence_tolerance: float = 0.10
    adherence_tolerance_ms: float = 1.0
    recovery_p99_tolerance: float = 0.5
    recovery_p99_tolerance_ms: float = 5.0
    recovery_refusal_tolerance: float = 0.02
    recovery_stable_intervals: int = 3
    lag_p99_limit_ms: float = 10.0
    health_probe_interval_s: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    seed: int
    interval_s: float
    timeout_s: float
    max_in_flight: int
    drain_s: float
    target: TargetSetup
    service: ServiceSpec
    analysis: AnalysisSpec
    mixes: Mapping[str, tuple[OpSpec, ...]] = field(hash=False)  # a plain dict: picklable
    phases: tuple[Phase, ...]
    checks: tuple[Check, ...]
    source: str

    @property
    def duration_s(self) -> float:
        """The length of all phases together (the drain not included)."""
        return self.phase_bounds()[-1][1]

    def phase_bounds(self) -> tuple[tuple[float, float], ...]:
        """(start_s, end_s) of each phase, as offsets from the start of the run."""
        bounds, start_s = [], 0.0
        for phase in self.phases:
            bounds.append((start_s, start_s + phase.duration_s))
            start_s += phase.duration_s
        return tuple(bounds)

    def phase_at(self, offset_s: float) -> Phase | None:
        """The phase running at ``offset_s`` (a phase covers [start, end)); None outside."""
        for phase, (start_s, end_s) in zip(self.phases, self.phase_bounds(), strict=True):
            if start_s <= offset_s < end_s:
                return phase
        return None


# --- the raw shape of the file ----------------------------------------------------------


class _Raw(msgspec.Struct, forbid_unknown_fields=True):
    pass


class _RawTarget(_Raw, kw_only=True):
    budget_usd: float | None = None
    soft_budget_usd: float | None = None
    window: str | None = None


class _RawService(_Raw, kw_only=True):
    approval_workers: int | None = None
    approval_service_time: str | None = None
    queue_bound: int | None = None
    max_queue_wait: str | None = None
    time_scale: float | None = None
    seed: int | None = None
    defects: list[str] = []


class _RawAnalysis(_Raw, kw_only=True):
    adherence_tolerance: float = 0.10
    adherence_tolerance_ms: float = 1.0
    recovery_p99_tolerance: float = 0.5
    recovery_p99_tolerance_ms: float = 5.0
    recovery_refusal_tolerance: float = 0.02
    recovery_stable_intervals: int = 3
    lag_p99_limit: str = "10ms"
    health_probe_interval: str = "1s"


class _RawOp(_Raw, kw_only=True):
    op: str
    weight: float = 1.0
    priority: int | dict[str, float] | None = None
    cost_usd: float | list[float] = 0.0
    task: str
    agents: list[str] = msgspec.field(default_factory=lambda: ["agent-1"])
    task_type: str | None = None
    model: str | None = None
    fallbacks: list[str] | None = None
    hallucinate_rate: float = 0.0
    conflict_rate: float = 0.0
    correct: bool = False


class _RawSetup(_Raw, kw_only=True):
    faults: dict[str, Any] | None = None
    clear_faults: bool = False
    budget_usd: float | None = None
    soft_budget_usd: float | None = None


class _RawStream(_Raw, kw_only=True):
    arrival: str = "constant"
    rate: str | None = None
    to_rate: str | None = None
    users: int | None = None
    think: str | None = None
    mix: str


class _RawPhase(_Raw, kw_only=True):
    name: str
    role: str = "load"
    duration: str
    setup: _RawSetup | None = None
    streams: list[_RawStream] = []


class _RawScenario(_Raw, kw_only=True):
    name: str
    description: str = ""
    seed: int = 0
    interval: str = "1s"
    timeout: str = "5s"
    max_in_flight: int = 4096
    drain: str = "2s"
    checks: list[str] = []
    default_checks: bool = True
    target: _RawTarget = msgspec.field(default_factory=_RawTarget)
    service: _RawService = msgspec.field(default_factory=_RawService)
    analysis: _RawAnalysis = msgspec.field(default_factory=_RawAnalysis)
    # Each mix is converted on its own, so that an error in it can name the mix.
    mixes: dict[str, object] = {}
    phases: list[_RawPhase] = []


# --- parsing ----------------------------------------------------------------------------


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML; ``source`` (usually the path) prefixes error messages.

    Raises ScenarioError, whose one-line message names the line and the field path.
    """
    where = _Locator(text, source)
    raw = _decode(text, where)
    mixes = {name: _build_mix(name, entries, where) for name, entries in raw.mixes.items()}
    analysis = _build_analysis(raw.analysis, where)
    phases = _build_phases(raw, mixes, where)
    used = {stream.mix for phase in phases for stream in phase.streams}
    return Scenario(
        name=_nonempty(raw.name, ("name",), where),
        description=raw.description,
        seed=raw.seed,
        interval_s=_duration(raw.interval, ("interval",), where),
        timeout_s=_duration(raw.timeout, ("timeout",), where),
        max_in_flight=_at_least(raw.max_in_flight, 1, ("max_in_flight",), where),
        drain_s=_duration(raw.drain, ("drain",), where, allow_zero=True),
        target=_build_target(raw.target, where),
        service=_build_service(raw.service, where),
        analysis=analysis,
        mixes=mixes,
        phases=phases,
        checks=_build_checks(raw, analysis, where, _priorities(mixes, used)),
        source=source,
    )


def _decode(text: str, where: _Locator) -> _RawScenario:
    try:
        return msgspec.toml.decode(text, type=_RawScenario)
    except msgspec.ValidationError as exc:
        raise where.from_msgspec(exc, ()) from None
    except msgspec.DecodeError as exc:
        raise where.syntax_error(str(exc)) from None


def _build_mix(name: str, entries: object, where: _Locator) -> tuple[OpSpec, ...]:
    path: Path = ("mixes", name)
    try:
        raw_ops = msgspec.convert(entries, list[_RawOp])
    except msgspec.ValidationError as exc:
        raise where.from_msgspec(exc, path) from None
    if not raw_ops:
        raise where.error(path, "a mix needs at least one operation")
    return tuple(_build_op(op, (*path, i), where) for i, op in enumerate(raw_ops))


def _build_op(raw: _RawOp, path: Path, where: _Locator) -> OpSpec:
    if raw.op not in KNOWN_OPERATIONS:
        known = ", ".join(KNOWN_OPERATIONS)
        raise where.error((*path, "op"), f"unknown operation {raw.op!r}; known: {known}")
    if not raw.agents or not all(raw.agents):
        raise where.error((*path, "agents"), "needs at least one agent, and no empty names")
    if raw.priority is None and raw.op == "approval":
        raise where.error((*path, "priority"), "required field is missing")
    for name in ("hallucinate_rate", "conflict_rate"):
        if not 0.0 <= getattr(raw, name) <= 1.0:
            raise where.error((*path, name), f"must be between 0 and 1, got {getattr(raw, name)}")
    if raw.op == "conflict_check" and len(raw.agents) < 3:
        raise where.error(
            (*path, "agents"), "a conflict check needs at least 3 agents (a majority)"
        )
    return OpSpec(
        op=raw.op,
        weight=_positive(raw.weight, (*path, "weight"), where),
        priority_weights=_priority_weights(
            3 if raw.priority is None else raw.priority, (*path, "priority"), where
        ),
        cost_usd=_cost_range(raw.cost_usd, (*path, "cost_usd"), where),
        task=raw.task,
        agents=tuple(raw.agents),
        task_type=raw.task_type,
        model=raw.model,
        fallbacks=None if raw.fallbacks is None else tuple(raw.fallbacks),
        hallucinate_rate=raw.hallucinate_rate,
        conflict_rate=raw.conflict_rate,
        correct=raw.correct,
    )


def _priority_weights(
    raw: int | dict[str, float], path: Path, where: _Locator
) -> tuple[tuple[int, float], ...]:
    pairs = {str(raw): 1.0} if isinstance(raw, int) else raw
    if not pairs:
        raise where.error(path, "needs at least one priority")
    weights = {_priority(key, path, where): weight for key, weight in pairs.items()}
    for priority, weight in weights.items():
        _positive(weight, path, where, f"the weight of priority {priority} ")
    return tuple(sorted(weights.items()))


def _priority(key: str, path: Path, where: _Locator) -> int:
    if not (key.isdigit() and int(key) in _PRIORITIES):
        raise where.error(path, f"priorities must be 1..5, got {key}")
    return int(key)


def _cost_range(raw: float | list[float], path: Path, where: _Locator) -> tuple[float, float]:
    bounds = [raw] * 2 if isinstance(raw, float) else raw
    if len(bounds) != 2:
        raise where.error(path, f"expected a number or a range [lo, hi], got {len(bounds)} values")
    lo, hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and lo >= 0):
        raise where.error(path, "costs must be finite and >= 0")
    if lo > hi:
        raise where.error(path, f"the range [{lo:g}, {hi:g}] has lo > hi")
    return lo, hi


def _build_phases(
    raw: _RawScenario, mixes: Mapping[str, tuple[OpSpec, ...]], where: _Locator
) -> tuple[Phase, ...]:
    if not raw.phases:
        raise where.error(("phases",), "a scenario needs at least one phase")
    phases = tuple(_build_phase(raw, i, mixes, where) for i in range(len(raw.phases)))
    _check_names(phases, where)
    _check_roles(phases, where)
    return phases


def _build_phase(
    raw: _RawScenario, index: int, mixes: Mapping[str, tuple[OpSpec, ...]], where: _Locator
) -> Phase:
    phase, path = raw.phases[index], ("phases", index)
    role = _ROLES.get(phase.role)
    if role is None:
        raise where.error((*path, "role"), f"must be one of {', '.join(_ROLES)}")
    if not phase.streams:
        raise where.error((*path, "streams"), "a phase needs at least one stream")
    duration_s = _duration(phase.duration, (*path, "duration"), where)
    streams = tuple(
        _build_stream(
            s, duration_s, _stream_seed(raw.seed, index, j), (*path, "streams", j), mixes, where
        )
        for j, s in enumerate(phase.streams)
    )
    setup = None
    if phase.setup is not None:
        s = phase.setup
        setup = PhaseSetup(s.faults, s.clear_faults, s.budget_usd, s.soft_budget_usd)
    return Phase(_nonempty(phase.name, (*path, "name"), where), role, duration_s, streams, setup)


def _build_stream(
    raw: _RawStream,
    duration_s: float,
    stream_seed: int,
    path: Path,
    mixes: Mapping[str, tuple[OpSpec, ...]],
    where: _Locator,
) -> Stream:
    if raw.mix not in mixes:
        defined = ", ".join(sorted(mixes)) or "none"
        raise where.error((*path, "mix"), f"no mix named {raw.mix!r}; defined: {defined}")
    if raw.arrival not in _ARRIVALS:
        raise where.error((*path, "arrival"), f"must be one of {', '.join(_ARRIVALS)}")
    if raw.arrival == "closed":
        return Stream(_closed(raw, duration_s, path, where), raw.mix)
    for name in ("users", "think"):
        if getattr(raw, name) is not None:
            raise where.error((*path, name), "only a closed arrival (virtual users) has this")
    if raw.rate is None:
        raise where.error((*path, "rate"), "required field is missing")
    rate_per_s, end_rate_per_s = _stream_rates(raw, path, where)
    try:
        arrival = _arrival(raw.arrival, rate_per_s, end_rate_per_s, duration_s, stream_seed)
    except ValueError as exc:  # the schedule refuses plans too large to run
        raise where.error((*path, "rate"), str(exc).rstrip(".")) from None
    return Stream(arrival, raw.mix)


def _closed(raw: _RawStream, duration_s: float, path: Path, where: _Locator) -> ClosedLoop:
    """Closed-loop virtual users: `users` of them, each thinking `think` between requests."""
    for name in ("rate", "to_rate"):
        if getattr(raw, name) is not None:
            raise where.error((*path, name), "a closed arrival has users and think, not a rate")
    if raw.users is None or raw.users < 1:
        raise where.error((*path, "users"), "a closed arrival needs users >= 1")
    think_s = 0.0
    if raw.think is not None:
        try:
            think_s = parse_duration(raw.think)
        except UnitError as exc:
            raise where.error((*path, "think"), str(exc)) from None
    return ClosedLoop(raw.users, think_s, duration_s)


def _stream_rates(raw: _RawStream, path: Path, where: _Locator) -> tuple[float, float]:
    """(rate, end rate) per second; the end rate is the rate except for a ramp."""
    assert raw.rate is not None
    if raw.arrival != "ramp" and raw.to_rate is not None:
        raise where.error((*path, "to_rate"), "only a ramp has a to_rate")
    if raw.arrival == "ramp" and raw.to_rate is None:
        raise where.error((*path, "arrival"), "a ramp needs to_rate, its end rate")
    rate_per_s = _rate(raw.rate, (*path, "rate"), where)
    end_text = raw.rate if raw.to_rate is None else raw.to_rate
    end_rate_per_s = _rate(end_text, (*path, "to_rate"), where)
    if max(rate_per_s, end_rate_per_s) == 0:
        raise where.error((*path, "rate"), f"must be more than zero, got {raw.rate!r}")
    return rate_per_s, end_rate_per_s


def _arrival(
    kind: str, rate_per_s: float, end_rate_per_s: float, duration_s: float, seed: int
) -> Arrival:
    if kind == "ramp":
        return Ramp(rate_per_s, end_rate_per_s, duration_s)
    if kind == "poisson":
        return Poisson(rate_per_s, duration_s, seed=seed)
    return Constant(rate_per_s, duration_s)


def _stream_seed(seed: int, phase_index: int, stream_index: int) -> int:
    """A seed for one stream's arrivals, from the scenario seed and the stream's position only."""
    text = f"{seed}:{phase_index}:{stream_index}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _check_names(phases: tuple[Phase, ...], where: _Locator) -> None:
    first: dict[str, int] = {}
    for i, phase in enumerate(phases):
        if phase.name in first:
            problem = f"{phase.name!r} is already the name of phases[{first[phase.name]}]"
            raise where.error(("phases", i, "name"), problem)
        first[phase.name] = i


def _check_roles(phases: tuple[Phase, ...], where: _Locator) -> None:
    first: dict[str, int] = {}
    for i, phase in enumerate(phases):
        path = ("phases", i, "role")
        if phase.role in ("baseline", "storm") and phase.role in first:
            problem = (
                f"phases[{first[phase.role]}] is already the {phase.role}; at most one is allowed"
            )
            raise where.error(path, problem)
        if phase.role == "recovery" and "storm" not in first:
            raise where.error(path, "a recovery phase needs a storm phase before it")
        first.setdefault(phase.role, i)


def _priorities(mixes: Mapping[str, tuple[OpSpec, ...]], used: set[str]) -> dict[str, set[int]]:
    """The priorities each operation is sent at, in the mixes the phases use."""
    out: dict[str, set[int]] = {}
    for name in used:
        for spec in mixes[name]:
            out.setdefault(spec.op, set()).update(p for p, _ in spec.priority_weights)
    return out


def _build_checks(
    raw: _RawScenario,
    analysis: AnalysisSpec,
    where: _Locator,
    priorities: Mapping[str, set[int]],
) -> tuple[Check, ...]:
    user = []
    for i, text in enumerate(raw.checks):
        try:
            check = parse_check(text)
        except ValueError as exc:
            raise where.error(("checks", i), str(exc)) from None
        problem = unknown_metric(check.metric) or unknown_series(check.metric, priorities)
        if problem is not None:
            raise where.error(("checks", i), problem)
        user.append(check)
    if not raw.default_checks:
        return tuple(user)
    # A user's check on a metric replaces the default check on it.
    checked = {check.metric for check in user}
    defaults = (*DEFAULT_CHECKS, lag_check(analysis.lag_p99_limit_ms))
    return (*user, *(check for check in defaults if check.metric not in checked))


def _build_target(raw: _RawTarget, where: _Locator) -> TargetSetup:
    for name in ("budget_usd", "soft_budget_usd"):
        value = getattr(raw, name)
        if value is not None:
            _positive(value, ("target", name), where)
    if raw.budget_usd is not None and (raw.soft_budget_usd or 0.0) > raw.budget_usd:
        raise where.error(("target", "soft_budget_usd"), "must not exceed budget_usd")
    if raw.window is not None:
        _nonempty(raw.window, ("target", "window"), where)
    return TargetSetup(raw.budget_usd, raw.soft_budget_usd, raw.window)


def _build_service(raw: _RawService, where: _Locator) -> ServiceSpec:
    def optional_duration(text: str | None, name: str, allow_zero: bool) -> float | None:
        return (
            None
            if text is None
            else _duration(text, ("service", name), where, allow_zero=allow_zero)
        )

    def optional_int(value: int | None, name: str, low: int) -> int | None:
        return None if value is None else _at_least(value, low, ("service", name), where)

    if raw.time_scale is not None and not raw.time_scale > 0:
        raise where.error(
            ("service", "time_scale"), f"must be more than zero, got {raw.time_scale}"
        )
    return ServiceSpec(
        approval_workers=optional_int(raw.approval_workers, "approval_workers", 1),
        approval_service_time_s=optional_duration(
            raw.approval_service_time, "approval_service_time", True
        ),
        queue_bound=optional_int(raw.queue_bound, "queue_bound", 0),
        max_queue_wait_s=optional_duration(raw.max_queue_wait, "max_queue_wait", False),
        time_scale=raw.time_scale,
        seed=raw.seed,
        defects=tuple(raw.defects),
    )


def _build_analysis(raw: _RawAnalysis, where: _Locator) -> AnalysisSpec:
    for name in (
        "adherence_tolerance",
        "adherence_tolerance_ms",
        "recovery_p99_tolerance",
        "recovery_p99_tolerance_ms",
        "recovery_refusal_tolerance",
    ):
        value = getattr(raw, name)
        if not (math.isfinite(value) and value >= 0):
            raise where.error(("analysis", name), f"must be finite and >= 0, got {value!r}")
    lag_s = _duration(raw.lag_p99_limit, ("analysis", "lag_p99_limit"), where)
    return AnalysisSpec(
        adherence_tolerance=raw.adherence_tolerance,
        adherence_tolerance_ms=raw.adherence_tolerance_ms,
        recovery_p99_tolerance=raw.recovery_p99_tolerance,
        recovery_p99_tolerance_ms=raw.recovery_p99_tolerance_ms,
        recovery_refusal_tolerance=raw.recovery_refusal_tolerance,
        recovery_stable_intervals=_at_least(
            raw.recovery_stable_intervals, 1, ("analysis", "recovery_stable_intervals"), where
        ),
        lag_p99_limit_ms=round(lag_s * 1000, 9),
        health_probe_interval_s=_duration(
            raw.health_probe_interval, ("analysis", "health_probe_interval"), where
        ),
    )


# --- value checks -----------------------------------------------------------------------


def _duration(text: str, path: Path, where: _Locator, allow_zero: bool = False) -> float:
    try:
        duration_s = parse_duration(text)
    except UnitError as exc:
        raise where.error(path, str(exc).rstrip(".")) from None
    if duration_s == 0 and not allow_zero:
        raise where.error(path, f"must be longer than zero, got {text!r}")
    return duration_s


def _rate(text: str, path: Path, where: _Locator) -> float:
    try:
        return parse_rate(text)
    except UnitError as exc:
        raise where.error(path, str(exc).rstrip(".")) from None


def _positive(value: float, path: Path, where: _Locator, subject: str = "") -> float:
    if not (math.isfinite(value) and value > 0):
        raise where.error(path, f"{subject}must be finite and > 0, got {value:g}")
    return value


def _at_least(value: int, low: int, path: Path, where: _Locator) -> int:
    if value < low:
        raise where.error(path, f"must be >= {low}, got {value}")
    return value


def _nonempty(text: str, path: Path, where: _Locator) -> str:
    if not text.strip():
        raise where.error(path, "must not be empty")
    return text


# --- error locations --------------------------------------------------------------------

_MSGSPEC_FIELD = re.compile(r"Object (contains unknown|missing required) field `(\w+)`")
_MSGSPEC_PATH = re.compile(r"\.(\w+)|\[(\d+)\]|\[\.\.\.\]")
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


class _Locator:
    """Turns a field path into ``<source>:<line>: <path>: <problem>`` using the TOML text."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.line_count = max(1, len(text.splitlines()))
        self.lines = _scan_lines(text)

    def line_of(self, path: Path) -> int:
        """The line that sets ``path``, else that of its nearest enclosing key or table."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def error(self, path: Path, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}:{self.line_of(path)}: {_render(path)}: {problem}")

    def from_msgspec(self, exc: msgspec.ValidationError, prefix: Path) -> ScenarioError:
        """Rewrite msgspec's ``Expected `int`, got `str` - at `$.a[0].b``` into our form."""
        message, _, location = str(exc).partition(" - at ")
        path = prefix + _msgspec_path(location)
        if location.startswith("`key`"):
            message = f"a key: {message}"
        field_match = _MSGSPEC_FIELD.fullmatch(message)
        if field_match:
            problem = (
                "unknown field"
                if field_match[1].startswith("contains")
                else "required field is missing"
            )
            path, message = (*path, field_match[2]), problem
        message = message.replace("`", "").replace("Expected", "expected")
        return self.error(path, _plain_types(message, path[-1] if path else ""))

    def syntax_error(self, message: str) -> ScenarioError:
        """A TOML syntax error; tomllib's message carries the line (or 'end of document')."""
        at = _TOML_AT.search(message)
        line = int(at[1]) if at and at[1] else self.line_count
        problem = message[: at.start()] if at else message
        column = (f" at column {at[2]}" if at[2] else " at end of document") if at else ""
        return ScenarioError(
            f"{self.source}:{line}: invalid TOML: {problem[:1].lower()}{problem[1:]}{column}"
        )


def _msgspec_path(location: str) -> Path:
    dollar = location.find("$")
    body = location[dollar + 1 :].rstrip("`") if dollar >= 0 else ""
    return tuple(m[1] or int(m[2]) for m in _MSGSPEC_PATH.finditer(body) if m[0] != "[...]")


def _render(path: Path) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "scenario"


# A key: bare (a-z, 0-9, _ and -) or quoted; dotted keys are several, joined by dots.
_KEY_PART = re.compile(r"\s*(?:([A-Za-z0-9_-]+)|\"((?:[^\"\\]|\\.)*)\"|'([^']*)')\s*")


def _parse_key(text: str, pos: int) -> tuple[list[str], int] | None:
    """Parse a (dotted) key at ``pos``; return its parts and the position after it."""
    parts: list[str] = []
    while (m := _KEY_PART.match(text, pos)) is not None:
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if not text.startswith(".", pos):
            return parts, pos
        pos += 1
    return None


def _scan_lines(text: str) -> dict[Path, int]:
    """Map each table and key path of common TOML shapes to the line that defines it.

    Tracks ``[table]`` and ``[[array]]`` headers (with their element index), dotted keys
    and ``key = value`` lines; lines inside multi-line arrays, inline tables and strings
    are skipped. Good enough to point at a line; tomllib has already checked the syntax.
    """
    lines: dict[Path, int] = {}
    arrays: dict[Path, int] = {}  # array of tables -> index of its last element
    table: Path = ()
    value = _ValueScanner(lines)
    for number, line in enumerate(text.splitlines(), 1):
        if value.open:
            value.feed(line, number)
            continue
        stripped = line.strip()
        if stripped.startswith("["):
            table = _header(stripped, number, lines, arrays) or table
            continue
        key = _parse_key(line, 0)
        if key is None or not line.startswith("=", key[1]):
            continue
        path = table + tuple(key[0])
        for n in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:n], number)
        value.start(path, line[key[1] + 1 :], number)
    return lines


def _header(
    stripped: str, number: int, lines: dict[Path, int], arrays: dict[Path, int]
) -> Path | None:
    is_array = stripped.startswith("[[")
    key = _parse_key(stripped, 2 if is_array else 1)
    if key is None:
        return None
    parts = key[0]
    path = _resolve(parts[:-1], arrays) + (parts[-1],)
    if is_array:
        lines.setdefault(path, number)
        arrays[path] = arrays.get(path, -1) + 1
        path = (*path, arrays[path])
    for n in range(1, len(path) + 1):
        lines.setdefault(path[:n], number)
    return path


def _resolve(parts: list[str], arrays: dict[Path, int]) -> Path:
    """The path of a header's parent: a name of an array of tables means its last element."""
    path: Path = ()
    for part in parts:
        path = (*path, part)
        if path in arrays:
            path = (*path, arrays[path])
    return path


class _ValueScanner:
    """Follows one value over its lines (brackets, strings, comments), so that continuation
    lines are not read as keys, and records the line on which each array element starts."""

    def __init__(self, lines: dict[Path, int]) -> None:
        self.lines = lines
        self.path: Path = ()
        self.depth = 0
        self.quote: str | None = None  # the multi-line string delimiter we are inside
        self.element = 0  # index of the current element when the value is an array
        self.pending = False  # an array element starts at the next value character
        self.number = 0

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.quote is not None

    def start(self, path: Path, text: str, number: int) -> None:
        self.path, self.element, self.pending = path, 0, False
        self.feed(text, number)

    def feed(self, text: str, number: int) -> None:
        self.number, pos = number, 0
        while pos < len(text):
            pos = self._step(text, pos)

    def _step(self, text: str, pos: int) -> int:
        if self.quote is not None:
            end = text.find(self.quote, pos)
            if end < 0:
                return len(text)
            self.quote = None
            return end + 3
        char = text[pos]
        if char.isspace() or char == "#":
            return pos + 1 if char.isspace() else len(text)
        if self.depth == 1 and char not in ",]}":
            if self.pending:
                self.lines.setdefault((*self.path, self.element), self.number)
            self.pending = False
        if text.startswith(('"""', "'''"), pos):
            self.quote = text[pos : pos + 3]
            return pos + 3
        if char in "\"'":
            string = _KEY_PART.match(text, pos)
            return string.end() if string else len(text)
        if self.depth == 1 and char == ",":
            self.element, self.pending = self.element + 1, True
        if self.depth == 0 and char == "[":
            self.pending = True
        self.depth += (char in "[{") - (char in "]}")
        return pos + 1


_TYPE_WORDS = {
    "str": "text in quotes",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}
_DURATIONS = (
    "duration",
    "timeout",
    "interval",
    "drain",
    "think",
    "max_queue_wait",
    "approval_service_time",
    "lag_p99_limit",
    "health_probe_interval",
)
_TYPE_MISMATCH = re.compile(r"expected (.+), got (\w+)")


def _plain_types(message: str, field: object) -> str:
    """'expected str | null, got int' in words a scenario's author uses, with an example."""
    found = _TYPE_MISMATCH.fullmatch(message)
    if not found:
        return message
    if field in ("rate", "to_rate"):
        want = 'a rate in quotes, like "200/s" or "1/500ms"'
    elif field in _DURATIONS:
        want = 'a duration in quotes, like "10s" or "250ms"'
    else:
        kinds = [k.strip() for k in found[1].split("|") if k.strip() != "null"]
        want = " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
    return f"expected {want}, got {_TYPE_WORDS.get(found[2], found[2])}"
