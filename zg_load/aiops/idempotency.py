"""`Idempotency-Key` on POSTs: the same key and body replay the first answer.

Guarantees:
- the first request with a key runs; a concurrent or later one with the same key, path
  and body waits for it and gets the same status, body and Retry-After, plus
  `Idempotent-Replayed: true`; the same key with a different body is 409
  `idempotency_conflict`;
- only final answers are kept: server errors (5xx), rate limits and auth failures are
  not, so their retry runs afresh;
- at most `max_entries` answers are kept in memory, the oldest dropped first.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from zg_load.aiops.errors import ApiError, invalid
from zg_load.aiops.replies import error_response

IDEMPOTENCY_CONFLICT = "idempotency_conflict"
HEADER = "Idempotency-Key"
_KEPT_HEADERS = ("Content-Type", "Retry-After")
_NOT_KEPT_TYPES = frozenset({"rate_limit", "unauthorized", IDEMPOTENCY_CONFLICT})
MAX_KEY_CHARS = 255

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Kept:
    status: int
    body: bytes
    headers: dict[str, str]

    def response(self) -> web.Response:
        response = web.Response(body=self.body, status=self.status, headers=self.headers)
        response.headers["Idempotent-Replayed"] = "true"
        return response


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    done: asyncio.Future[Kept | None]


class IdempotencyStore:
    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def reset(self) -> None:
        self._entries.clear()

    async def run(
        self, request: web.Request, handler: Handler, request_id: str
    ) -> web.StreamResponse:
        """Answer `request` under its Idempotency-Key (see the module docstring)."""
        key = _key(request)
        fingerprint = hashlib.sha256(await request.read()).digest()
        while (entry := self._entries.get((request.path, key))) is not None:
            if entry.fingerprint != fingerprint:
                message = f"{HEADER}: already used with a different body"
                raise ApiError(409, IDEMPOTENCY_CONFLICT, message)
            kept = await asyncio.shield(entry.done)
            if kept is not None:
                return kept.response()
        return await self._first(request, handler, request_id, key, fingerprint)

    async def _first(
        self, request: web.Request, handler: Handler, request_id: str, key: str, fp: bytes
    ) -> web.StreamResponse:
        entry = _Entry(fp, asyncio.get_running_loop().create_future())
        self._remember((request.path, key), entry)
        kept: Kept | None = None
        try:
            try:
                response = await handler(request)
                error_type = None
            except ApiError as exc:
                response, error_type = error_response(exc, request_id), exc.error_type
            kept = _keepable(response, error_type)
            return response
        finally:
            entry.done.set_result(kept)
            if kept is None:
                self._entries.pop((request.path, key), None)

    def _remember(self, where: tuple[str, str], entry: _Entry) -> None:
        self._entries[where] = entry
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _key(request: web.Request) -> str:
    key = request.headers[HEADER]
    if not 0 < len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise invalid(HEADER, f"must be 1 to {MAX_KEY_CHARS} printable characters")
    return key


def _keepable(response: web.StreamResponse, error_type: str | None) -> Kept | None:
    if response.status >= 500 or error_type in _NOT_KEPT_TYPES:
        return None
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return None
    headers = {h: response.headers[h] for h in _KEPT_HEADERS if h in response.headers}
    return Kept(response.status, response.body, headers)
