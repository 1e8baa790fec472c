"""The AI Ops client: one protocol, one method per call, and the HTTP implementation.

Every call returns an ``Answer`` whose outcome is exactly one of ok / refused /
error / timeout / transport. Foreign exceptions are mapped by one table
(``EXCEPTION_OUTCOMES``); nothing the network does escapes as an exception, so the
engine can account every request exactly once.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import aiohttp
import orjson

from zg_load.outcome import Outcome, classify


@dataclass(frozen=True, slots=True)
class Answer:
    """What one call came back with. ``status`` is 0 when no HTTP answer arrived."""

    outcome: Outcome
    status: int
    reason: str | None = None
    body: Any = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@runtime_checkable
class AIOpsClient(Protocol):
    """The calls zg_load makes of an AI Ops service. Adapters implement this.

    An adapter whose every call answers ``Outcome.TIMEOUT`` by itself within some
    ``timeout_s`` may say so with an attribute ``enforces_timeout_s = timeout_s``; when that
    is no longer than the run's timeout, the Engine puts no cancel scope of its own around
    its calls. Without it, the Engine times each call out itself.
    """

    async def set_budget_limit(
        self, max_usd: float, soft_usd: float | None = None, window: str | None = None
    ) -> Answer: ...

    async def get_budget(self) -> Answer: ...

    async def request_approval(
        self,
        task_description: str,
        estimated_cost: float,
        priority: int,
        agent_id: str | None = None,
    ) -> Answer: ...

    async def get_system_status(self) -> Answer: ...

    async def health(self) -> Answer: ...

    async def notifications(self, since: int = 0) -> Answer: ...

    async def execute_task_with_monitoring(
        self, task: Mapping[str, Any], *, agent_id: str | None = None, **options: Any
    ) -> Answer: ...

    async def execute_task_for_agent(
        self, agent_id: str, task: Mapping[str, Any], **options: Any
    ) -> Answer: ...

    async def execute_task_with_fallback(
        self, task: Mapping[str, Any], fallbacks: Sequence[str] | None = None, **options: Any
    ) -> Answer: ...

    async def check_for_conflicts(self, results: Mapping[str, Any]) -> Answer: ...

    async def handle_anomaly(self, alert: Mapping[str, Any]) -> Answer: ...

    async def aclose(self) -> None: ...


class AdminClient(Protocol):
    """Admin calls a scenario's setup uses (faults, reset); need the admin token."""

    async def set_faults(self, faults: Mapping[str, Any]) -> Answer: ...

    async def get_faults(self) -> Answer: ...

    async def clear_faults(self) -> Answer: ...

    async def reset(self) -> Answer: ...


@runtime_checkable
class TargetClient(AIOpsClient, AdminClient, Protocol):
    """A client for the calls and the admin calls: what a run with phase setup needs."""


def make_target_client(
    base_url: str,
    *,
    timeout_s: float,
    max_connections: int,
    admin_token: str | None,
    client_class: type[Any] | None = None,
) -> TargetClient:
    """The HTTP client, or a user's adapter class constructed with the same arguments."""
    cls = client_class or HttpClient
    client = cls(
        base_url, timeout_s=timeout_s, max_connections=max_connections, admin_token=admin_token
    )
    missing = [m for m in ("request_approval", "health", "aclose") if not hasattr(client, m)]
    if missing:
        raise TypeError(f"client {cls.__module__}:{cls.__qualname__} lacks {', '.join(missing)}")
    return client


TASK_OPTIONS = ("approval_id", "model", "fallbacks", "timeout_s", "correct")


def task_body(
    task: Mapping[str, Any], agent_id: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of POST /v1/tasks; unknown options are a caller's bug."""
    unknown = set(options) - set(TASK_OPTIONS)
    if unknown:
        raise TypeError(f"unknown task options: {', '.join(sorted(unknown))}")
    body: dict[str, Any] = {"task": dict(task)}
    if agent_id is not None:
        body["agent_id"] = agent_id
    body.update((k, v) for k, v in options.items() if v is not None)
    return body


# Order matters: the first matching class wins (aiohttp's timeout errors are also
# connection errors).
EXCEPTION_OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (TimeoutError, Outcome.TIMEOUT),
    (aiohttp.ClientConnectionError, Outcome.TRANSPORT),
    (aiohttp.ClientPayloadError, Outcome.TRANSPORT),
    (ConnectionError, Outcome.TRANSPORT),
    (aiohttp.ClientError, Outcome.ERROR),
    (orjson.JSONDecodeError, Outcome.ERROR),
)


def answer_for_exception(exc: BaseException) -> Answer:
    """Map a foreign exception onto an outcome; unknown exceptions propagate."""
    for cls, outcome in EXCEPTION_OUTCOMES:
        if isinstance(exc, cls):
            return Answer(outcome, 0, type(exc).__name__, str(exc) or None)
    raise exc


class AIOpsCalls(ABC):
    """The AI Ops calls of DESIGN §3 over one ``_call``; each transport supplies ``_call``."""

    @abstractmethod
    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, admin: bool = False
    ) -> Answer: ...

    async def set_budget_limit(
        self, max_usd: float, soft_usd: float | None = None, window: str | None = None
    ) -> Answer:
        body: dict[str, Any] = {"max_usd": max_usd}
        if soft_usd is not None:
            body["soft_usd"] = soft_usd
        if window is not None:
            body["window"] = window
        return await self._call("PUT", "/v1/budget", body)

    async def get_budget(self) -> Answer:
        return await self._call("GET", "/v1/budget")

    async def request_approval(
        self,
        task_description: str,
        estimated_cost: float,
        priority: int,
        agent_id: str | None = None,
    ) -> Answer:
        body: dict[str, Any] = {
            "task_description": task_description,
            "estimated_cost": estimated_cost,
            "priority": priority,
        }
        if agent_id is not None:
            body["agent_id"] = agent_id
        return await self._call("POST", "/v1/approvals", body)

    async def get_system_status(self) -> Answer:
        return await self._call("GET", "/v1/status")

    async def health(self) -> Answer:
        return await self._call("GET", "/health")

    async def notifications(self, since: int = 0) -> Answer:
        return await self._call("GET", f"/v1/notifications?since={since}")

    async def execute_task_with_monitoring(
        self, task: Mapping[str, Any], *, agent_id: str | None = None, **options: Any
    ) -> Answer:
        return await self._call("POST", "/v1/tasks", task_body(task, agent_id, options))

    async def execute_task_for_agent(
        self, agent_id: str, task: Mapping[str, Any], **options: Any
    ) -> Answer:
        path = f"/v1/agents/{quote(agent_id, safe='')}/tasks"
        return await self._call("POST", path, task_body(task, None, options))

    async def execute_task_with_fallback(
        self, task: Mapping[str, Any], fallbacks: Sequence[str] | None = None, **options: Any
    ) -> Answer:
        if fallbacks is not None:
            options["fallbacks"] = list(fallbacks)
        return await self._call("POST", "/v1/tasks", task_body(task, None, options))

    async def check_for_conflicts(self, results: Mapping[str, Any]) -> Answer:
        return await self._call("POST", "/v1/conflicts/check", {"results": dict(results)})

    async def handle_anomaly(self, alert: Mapping[str, Any]) -> Answer:
        return await self._call("POST", "/v1/anomalies", dict(alert))

    async def set_faults(self, faults: Mapping[str, Any]) -> Answer:
        """Admin: merge faults into the service's current set (needs the admin token)."""
        return await self._call("PUT", "/v1/admin/faults", dict(faults), admin=True)

    async def get_faults(self) -> Answer:
        """Admin: the faults in force (also proves the admin token works)."""
        return await self._call("GET", "/v1/admin/faults", admin=True)

    async def clear_faults(self) -> Answer:
        return await self._call("DELETE", "/v1/admin/faults", admin=True)

    async def reset(self) -> Answer:
        """Admin: clear spend, reservations, counters and faults (needs the admin token)."""
        return await self._call("POST", "/v1/admin/reset", {}, admin=True)


class HttpClient(AIOpsCalls):
    """aiohttp + orjson client for the REST API (DESIGN §3)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        max_connections: int = 1024,
        admin_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # aiohttp rounds a timeout of 5 s or more up to the loop's next whole second
        # (ceil_threshold); a measured timeout must fire at timeout_s, so it never rounds.
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, ceil_threshold=math.inf)
        # The total timeout (connection wait, send and read included) answers TIMEOUT, so
        # the Engine needs no cancel scope of its own around a call.
        self.enforces_timeout_s = timeout_s
        self._max_connections = max_connections
        self._admin_token = admin_token
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, raise_for_status=False
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, admin: bool = False
    ) -> Answer:
        headers = {"content-type": "application/json"} if body is not None else {}
        if admin and self._admin_token:
            headers["authorization"] = f"Bearer {self._admin_token}"
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._open().request(
                method, self.base_url + path, data=data, headers=headers
            ) as resp:
                raw = await resp.read()
                return answer_for_response(resp.status, raw)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # mapped by the one table; unknown ones re-raise
            return answer_for_exception(exc)


def answer_for_response(status: int, raw: bytes) -> Answer:
    """Classify an HTTP answer (status and raw body) into an ``Answer``; shared by both transports."""
    body: Any = None
    if raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw[:200].decode("utf-8", "replace")
    error_type = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error_type = body["error"].get("type")
    outcome, reason = classify(status, error_type)
    if outcome is Outcome.ERROR and reason is None:
        reason = error_type or f"http_{status}"
    return Answer(outcome, status, reason, body)


def load_client_class(spec: str) -> type[Any]:
    """Load a user's adapter from ``module:Class``; ValueError with a clear message."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"bad client '{spec}': expected 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"bad client '{spec}': cannot import {module_name}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise ValueError(f"bad client '{spec}': {module_name} has no class {attr}")
    return cls
