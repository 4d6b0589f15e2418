"""The API during a database outage: a quick 503 with `Retry-After`, never a bare 500 after the
driver's server-selection wait.

Three layers: a route that needs the database first asks the `DatabaseMonitor` (known down:
answer at once); its own database calls run under `interactive()` (pymongo's client-side
timeout, as for a command's first answer), and never around the fleet's work, whose tasks
would inherit the deadline; a connection failure or timeout that still escapes becomes a 503
and tells the monitor, so the next requests do not wait again.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError

from app.api.deps import DatabaseMonitorDep

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
