"""The service's error answers: one exception type, one JSON shape.

Every error body is `{"error": {"type", "message"}, "request_id"}`. The (status, type)
pairs of designed refusals are the ones `zg_load.outcome.REFUSALS` lists, so a client
classifies this service's answers with that one table.
"""

from __future__ import annotations

from collections.abc import Mapping

INVALID_REQUEST = "invalid_request"
UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
BUDGET_EXCEEDED = "budget_exceeded"
OVERLOADED = "overloaded"
INTERNAL = "internal_error"

# Error types for the HTTP errors aiohttp raises itself (router, body limit).
TYPE_BY_STATUS: dict[int, str] = {
    400: INVALID_REQUEST,
    401: UNAUTHORIZED,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: PAYLOAD_TOO_LARGE,
    429: BUDGET_EXCEEDED,
    503: OVERLOADED,
}


class ApiError(Exception):
    """An error answer: HTTP status, error type, message and extra headers."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


def invalid(field: str, message: str) -> ApiError:
    """400 invalid_request whose message starts with the offending field's name."""
    return ApiError(400, INVALID_REQUEST, f"{field}: {message}")


def error_body(error_type: str, message: str, request_id: str) -> dict[str, object]:
    return {"error": {"type": error_type, "message": message}, "request_id": request_id}
