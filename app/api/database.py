"""The API during a database outage: a quick 503 with `Retry-After`, never a bare 500 after the
driver's server-selection wait.

Three layers: a route that needs the database first asks the `DatabaseMonitor` (known down:
answer at once); its own database calls run under a short client-side deadline
(`pymongo.timeout`), and never around the fleet's work, whose tasks would inherit it; a
connection failure or deadline that still escapes becomes a 503 and tells the monitor, so the
next requests do not wait again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pymongo
from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError

from app.api.deps import DatabaseMonitorDep

# Seconds a request's own database work may take before the request answers 503.
DATABASE_DEADLINE = 2.0
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "the database is unreachable right now; retry in a few seconds"


def unavailable() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def require_database(monitor: DatabaseMonitorDep) -> None:
    if not monitor.reachable:
        raise unavailable()


DatabaseDep = Depends(require_database)


@contextlib.contextmanager
def database_deadline(seconds: float = DATABASE_DEADLINE) -> Iterator[None]:
    """Bound every MongoDB operation inside the block (server selection included) to `seconds`
    in total. Only the request's own database work goes inside: tasks created in the block (a
    bot being started) would inherit the deadline."""
    with pymongo.timeout(seconds):
        yield


def is_outage(exc: PyMongoError) -> bool:
    """The database did not answer (as opposed to answering with an error)."""
    return isinstance(exc, ConnectionFailure) or exc.timeout


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler: an outage is a 503 with Retry-After; any other database error is a bug."""
    if not isinstance(exc, PyMongoError) or not is_outage(exc):
        raise exc
    request.app.state.database_monitor.report_failure(exc)
    error = unavailable()
    return JSONResponse({"detail": error.detail}, error.status_code, error.headers)
