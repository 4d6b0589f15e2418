"""The FastAPI application and its lifespan, which owns the database and the fleet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError

from app import __version__
from app.api.dashboard import routes as dashboard
from app.api.dashboard.session import DashboardSessions
from app.api.database import database_error
from app.api.gate import RequestGate
from app.api.routes import admin, bots, guilds, health, metrics, workers
from app.api.schemas import ErrorPublic
from app.bots.manager import BotManager
from app.bots.telemetry import build_registry
from app.db.connection import DatabaseMonitor
from app.db.leases import FleetCollections
from app.logs import redact
from app.runtime import Store, apply_discord_endpoints, open_store
from app.settings import Settings

_log = logging.getLogger(__name__)

# No request of this API needs more than a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    apply_discord_endpoints(settings)
    async with contextlib.AsyncExitStack() as stack:
        # `chorus serve` opens the store before the server starts (a failure is then one line,
        # not a lifespan traceback); tests and other hosts let the lifespan open it.
        store: Store | None = getattr(app.state, "opened_store", None)
        if store is None:
            store = await stack.enter_async_context(open_store(settings))
        monitor = DatabaseMonitor(store.client)
        coordination = store.coordination_client
        manager = BotManager(
            settings=settings,
            cipher=store.cipher,
            coordination=None if coordination is None else FleetCollections.on(coordination[store.database]),
        )
        app.state.store = store
        app.state.database_monitor = monitor
        app.state.manager = manager
        app.state.metrics_registry = build_registry(
            manager, database_up=lambda: monitor.reachable, lease_counts=manager.fleet.lease_states
        )
        monitor.start()
        try:
            await manager.initialize()
            _log.info("Chorus is up: worker %s, %d bot(s) starting here",
                      manager.fleet.me, len(manager.runners))  # fmt: skip
            yield
        finally:
            _log.info("Shutting down")
            await manager.shutdown()
            await monitor.stop()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the reason and the field, but never the submitted value (it may be a token; so
    may an unknown key, which is why key names are redacted too)."""
    errors = [
        {
            "loc": [redact(part) if isinstance(part, str) else part for part in error.get("loc", ())],
            "msg": redact(str(error.get("msg", ""))),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Chorus",
        version=__version__,
        summary="A fleet of Discord music bots, run by one or more workers",
        lifespan=lifespan,
        responses={413: {"model": ErrorPublic, "description": "The body is over 64 KiB"}},
    )
    app.state.settings = settings or Settings()
    app.include_router(health.router)
    app.include_router(bots.router)
    app.include_router(guilds.router)
    app.include_router(workers.router)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.state.dashboard_sessions = DashboardSessions()
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(PyMongoError, database_error)
    app.add_middleware(RequestGate, max_body=MAX_BODY_BYTES)
    return app
