"""The error answers each route can give, declared in the OpenAPI schema (so it tells the truth)."""

from __future__ import annotations

from typing import Any

from app.api.database import RETRY_AFTER_SECONDS
from app.api.schemas import ErrorPublic

Responses = dict[int | str, dict[str, Any]]


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description, **extra}


ADMIN: Responses = {
    401: _error("No bearer credentials", headers={"WWW-Authenticate": {"schema": {"type": "string"}}}),
    403: _error("Wrong admin token"),
    404: _error("The admin API is disabled (no ADMIN_API_TOKEN), or no such bot"),
}
BODY: Responses = {
    400: _error("The body cannot be read (not UTF-8 JSON)"),
    413: _error("The body is over 64 KiB"),
}
DATABASE: Responses = {
    503: _error(
        "The database is unreachable; retry after the given seconds",
        headers={
            "Retry-After": {
                "description": f"Seconds to wait ({RETRY_AFTER_SECONDS})",
                "schema": {"type": "integer"},
            }
        },
    ),
}
