"""Connecting to MongoDB (or the embedded SecantusDB) and initialising Beanie."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import AbstractContextManager
from typing import Any

import pymongo
from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError

from app.db.models import DOCUMENT_MODELS
from app.shutdown import STOP_WAIT, cancel_bounded

_log = logging.getLogger(__name__)


# A command must answer within Discord's 3 s: the database work done before that answer gets
# this long (server selection included) before it gives up and the command answers without it.
INTERACTIVE_TIMEOUT = 1.5


def interactive() -> AbstractContextManager[None]:
    """Bound every database operation inside the block (pymongo's client-side timeout): on
    expiry it raises a `PyMongoError` (a timeout) instead of waiting for server selection (5 s)
    or, with a hung server, for a read that never ends."""
    return pymongo.timeout(INTERACTIVE_TIMEOUT)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached in time. The message is one line: hosts and reason."""


_CONFIGURED_TIMEOUTS = re.compile(r"\s*\(configured timeouts:[^)]*\)")


def database_hosts(url: str) -> str:
    """The host list of a MongoDB URL, without credentials, path or options."""
    rest = url.partition("://")[2] or url
    hosts = re.split(r"[/?]", rest, maxsplit=1)[0]
    return hosts.rpartition("@")[2] or "?"


def unreachable_reason(exc: PyMongoError) -> str:
    """Why pymongo gave up, in one line: not the topology description it appends."""
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        return str(details.get("errmsg") or exc).splitlines()[0]
    text = str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = text.split(", Timeout:", 1)[0]
        text = _CONFIGURED_TIMEOUTS.sub("", text)
    return " ".join(text.split()) or type(exc).__name__


def make_client(url: str, **kwargs: Any) -> AsyncMongoClient[dict[str, Any]]:
    # tz_aware: without it datetimes come back naive and compare wrongly with aware ones.
    options: dict[str, Any] = {"tz_aware": True, "serverSelectionTimeoutMS": 5000, "appname": "chorus"}
    options.update(kwargs)
    return AsyncMongoClient(url, **options)


async def connect_database(
    url: str, database: str, *, timeout: float = 30.0
) -> AsyncMongoClient[dict[str, Any]]:
    """Connect and run `init_beanie`, retrying until `timeout` so a database that is still
    starting (a container coming up beside us) does not fail the service."""
    client = make_client(url)
    started = time.monotonic()
    deadline = started + timeout
    delay = 0.2
    while True:
        try:
            await client.admin.command("ping")
            await init_beanie(database=client[database], document_models=DOCUMENT_MODELS)
            return client
        except PyMongoError as exc:
            hosts = database_hosts(url)
            reason = unreachable_reason(exc).removeprefix(f"{hosts}: ")
            _log.debug("Database at %s not reachable: %s", hosts, exc)  # with pymongo's topology dump
            if time.monotonic() + delay > deadline:
                await client.close()
                raise DatabaseUnavailable(
                    f"cannot reach MongoDB at {hosts} (database {database!r}): {reason}; gave up after "
                    f"{time.monotonic() - started:.0f}s (DATABASE_STARTUP_TIMEOUT={timeout:g})"
                ) from None
            _log.warning("Database at %s not reachable yet (%s); retrying in %.1fs", hosts, reason, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def close_client(client: AsyncMongoClient[dict[str, Any]], *, within: float = 1.0) -> None:
    """Close `client` without waiting serverSelectionTimeoutMS for a database that is gone: PyMongo
    first ends its server sessions (one command, skipped on failure) under this bound."""
    with pymongo.timeout(within):
        await client.close()


class DatabaseMonitor:
    """Pings the database in the background so `/health` answers from memory, fast."""

    def __init__(self, client: AsyncMongoClient[dict[str, Any]], *, interval: float = 5.0) -> None:
        self._client = client
        self._interval = interval
        self.reachable: bool = True
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        # PyMongo's own timeout, not asyncio.wait_for: a cancel landing while PyMongo selects a
        # server can be lost (the ping then fails later with nobody to collect it) and can leave
        # its topology lock held, so a later client close hangs.
        try:
            with pymongo.timeout(min(self._interval, 2.0)):
                await self._client.admin.command("ping")
        except (PyMongoError, TimeoutError) as exc:
            if self.reachable:
                _log.warning("Database unreachable: %s", exc)
            self.reachable, self.last_error = False, f"{type(exc).__name__}: {exc}"
        else:
            if not self.reachable:
                _log.info("Database reachable again")
            self.reachable, self.last_error = True, None
        return self.reachable

    def report_failure(self, exc: BaseException) -> None:
        """A caller saw the database fail to answer: believe it until the next successful ping,
        so other callers fail fast instead of each waiting for its own timeout."""
        if self.reachable:
            _log.warning("Database unreachable: %s", exc)
        self.reachable, self.last_error = False, f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="database-monitor")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def stop(self) -> None:
        await cancel_bounded([self._task], STOP_WAIT, what="The database monitor")
