"""The shipped OpenAPI document describes the real server: routes, bodies and answers.

A small JSON-schema validator (the subset the document uses) checks real answers
against the schema documented for their path, method and status.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import aiohttp
import anyio
import pytest

from zg_load.aiops import ServiceConfig, build_app, serving

pytestmark = pytest.mark.anyio

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOC: dict[str, Any] = json.loads(
    resources.files("zg_load.aiops").joinpath("openapi.json").read_text()
)
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "integer": (int,),
    "number": (int, float),
}


def errors_of(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Why `value` does not match `schema` (empty when it does)."""
    if "$ref" in schema:
        return errors_of(value, resolve(schema["$ref"]), where)
    if "type" in schema and not _typed(value, schema["type"]):
        return [f"{where}: {value!r} is not {schema['type']}"]
    found: list[str] = []
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        found += _bounds(value, schema, where)
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            found += errors_of(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        found += _object_errors(value, schema, where)
    return found


def _typed(value: Any, types: str | list[str]) -> bool:
    names = [types] if isinstance(types, str) else types
    if isinstance(value, bool):
        return "boolean" in names
    return any(isinstance(value, _TYPES[name]) for name in names)


def _bounds(value: float, schema: dict[str, Any], where: str) -> list[str]:
    ok = (
        value >= schema.get("minimum", value)
        and value <= schema.get("maximum", value)
        and ("exclusiveMinimum" not in schema or value > schema["exclusiveMinimum"])
    )
    return [] if ok else [f"{where}: {value} out of bounds"]


def _object_errors(value: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    found = [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            found += errors_of(item, properties[key], f"{where}.{key}")
        elif extra is False:
            found.append(f"{where}: unexpected {key}")
        elif isinstance(extra, dict):
            found += errors_of(item, extra, f"{where}.{key}")
    return found


def resolve(ref: str) -> dict[str, Any]:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def template_of(path: str) -> str:
    for template in DOC["paths"]:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path.split("?")[0]):
            return str(template)
    raise AssertionError(f"{path} is not documented")


class Checked:
    """Calls the server and checks each request body and answer against the document."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(
        self, method: str, path: str, body: Any = None, status: int = 200, **kw: Any
    ) -> Any:
        operation = DOC["paths"][template_of(path)][method.lower()]
        if body is not None and status < 400:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert errors_of(body, schema) == [], f"request body of {method} {path}"
        async with self.http.request(method, path, json=body, **kw) as resp:
            answer = await resp.json()
            assert resp.status == status, answer
            documented = operation["responses"].get(str(status))
            assert documented is not None, f"{method} {path} {status} is not documented"
            for header, spec in documented.get("headers", {}).items():
                if resolve(spec["$ref"]).get("required"):
                    assert header in resp.headers, f"{method} {path} {status}: no {header}"
        schema = documented["content"]["application/json"]["schema"]
        assert errors_of(answer, schema) == [], f"{method} {path} {status}"
        self.seen.add((template_of(path), method.lower(), status))
        return answer


def test_every_route_is_documented_and_every_path_served() -> None:
    app = build_app(ServiceConfig())
    served = {
        (r.resource.canonical, r.method.lower())
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    documented = {(p, m) for p, ops in DOC["paths"].items() for m in ops}
    assert served == documented
    assert DOC["openapi"].startswith("3.1")


def test_the_validator_can_fail() -> None:
    assert errors_of({"max_usd": "1"}, {"$ref": "#/components/schemas/BudgetRequest"})
    assert errors_of({"a": 1}, {"$ref": "#/components/schemas/Health"}) == [
        "$: missing status",
        "$: unexpected a",
    ]


async def test_real_answers_match_the_document() -> None:
    config = ServiceConfig(approval_service_time_s=0.0, admin_token=TOKEN, time_scale=0.01)
    with anyio.fail_after(20):
        async with serving(config) as running, aiohttp.ClientSession(running.url) as http:
            check = Checked(http)
            await _budget_and_approvals(check)
            await _tasks(check)
            await _checks_and_alerts(check)
            await _admin(check)
    assert len(check.seen) >= 25


async def _budget_and_approvals(check: Checked) -> None:
    await check("GET", "/health")
    await check("PUT", "/v1/budget", {"max_usd": 1.0, "soft_usd": 0.5, "window": "1d"})
    approval = {"task_description": "t", "estimated_cost": 0.6, "priority": 5, "agent_id": "a"}
    approved = await check("POST", "/v1/approvals", approval, 201)
    await check("POST", "/v1/approvals", approval, 429)
    await check("POST", "/v1/approvals", {"priority": 1}, 400)
    settle = f"/v1/approvals/{approved['approval_id']}/settle"
    await check("POST", settle, {"actual_cost": 0.1})
    await check("POST", settle, {"actual_cost": 0.1}, 409)
    await check("GET", "/v1/budget")
    await check("GET", "/v1/notifications?since=0")
    await check("GET", "/v1/notifications?since=x", status=400)


async def _tasks(check: Checked) -> None:
    body = {"task": {"type": "t", "description": "d", "hallucinate": True}, "correct": True}
    await check("POST", "/v1/tasks", body)
    await check("POST", "/v1/agents/a/tasks", {**body, "fallbacks": ["economy"]})
    await check("POST", "/v1/tasks", {**body, "approval_id": "apr_77"}, 409)
    await check("POST", "/v1/tasks", {"task": {}}, 400)
    down = {"models": {"economy": {"available": False}}, "rate_limit": {"per_agent_per_s": 1}}
    await check("PUT", "/v1/admin/faults", down, headers=AUTH)
    await check("POST", "/v1/tasks", {**body, "model": "economy"}, 503)
    await check("POST", "/v1/agents/b/tasks", body)
    await check("POST", "/v1/agents/b/tasks", body, 429)
    await check(
        "POST",
        "/v1/approvals",
        {"task_description": "t", "estimated_cost": 0.0, "priority": 1, "agent_id": "b"},
        429,
    )
    await check("GET", "/v1/status")
    await check("DELETE", "/v1/admin/faults", headers=AUTH)


async def _checks_and_alerts(check: Checked) -> None:
    results = {
        a: {"claims": {"x": v, "capital_japan": "Tokyo"}}
        for a, v in zip("abc", (1, 1, 2), strict=True)
    }
    await check("POST", "/v1/conflicts/check", {"results": results, "tolerance": 0.01})
    await check("POST", "/v1/conflicts/check", {"results": 1}, 400)
    alert = {
        "type": "backlog",
        "severity": "high",
        "details": {},
        "timestamp": "2025-01-01T00:00:00Z",
    }
    await check("POST", "/v1/anomalies", alert, 202)
    await check(
        "POST",
        "/v1/approvals",
        {"task_description": "t", "estimated_cost": 0.0, "priority": 1},
        503,
    )
    key = {"Idempotency-Key": "k"}
    await check("POST", "/v1/anomalies", alert, 202, headers=key)
    await check("POST", "/v1/anomalies", {**alert, "type": "other"}, 409, headers=key)
    await check("POST", "/v1/anomalies", {"type": "x"}, 400)
    await check("GET", "/v1/notifications")


async def _admin(check: Checked) -> None:
    faults = {
        "latency": {"ms": 1, "jitter_ms": 0},
        "error_rate": 0.0,
        "stall": {"path_prefix": "/nowhere", "probability": 0.5},
        "models": {"premium": {"available": True, "error_rate": 0.0}},
        "hallucination_rate": 0.1,
        "agents": {"a": {"hallucination_rate": 1.0}},
        "rate_limit": {"per_agent_per_s": 100, "burst": 10},
    }
    await check("PUT", "/v1/admin/faults", faults, headers=AUTH)
    await check("GET", "/v1/admin/faults", headers=AUTH)
    await check("PUT", "/v1/admin/faults", {"error_rate": 1.0}, headers=AUTH)
    await check("GET", "/v1/status", status=500)
    await check("PUT", "/v1/admin/faults", {"nope": 1}, 400, headers=AUTH)
    await check("GET", "/v1/admin/faults", status=401)
    await check("POST", "/v1/admin/reset", headers=AUTH)
    await check("POST", "/v1/admin/reset", status=401)
