"""This worker: its registration, its heartbeat, and its renew deadline.

One heartbeat (one write) every `LEASE_TTL / 5` renews every lease the worker holds. The worker
measures the age of its last *successful* heartbeat from the moment it sent it; at the renew
deadline (`LEASE_TTL * 2/3`) it stops all its bots at once, before anyone can observe it dead
(LEASE_TTL after they first saw that heartbeat, at the earliest). A heartbeat that matches no
document means another worker reaped this one: its bots stop, and it registers again under a
new id. These are the only ways a worker loses bots without releasing them (docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pymongo
from pymongo.errors import PyMongoError

from app.db import leases as lease_db
from app.db.leases import WorkersCollection
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    ttl: float

    @property
    def renew_deadline(self) -> float:
        """A worker without a successful heartbeat for this long stops its bots."""
        return self.ttl * 2 / 3

    @property
    def interval(self) -> float:
        """Between two heartbeats (and two balancing rounds when nothing wakes one)."""
        return self.ttl / 5


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    id: str
    host: str
    pid: int

    @classmethod
    def new(cls) -> WorkerIdentity:
        """`host:pid:random`: unique, never reused (a restarted process or a re-registration
        gets a new one), and readable in logs and /workers."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(4)}", host, pid)


Summary = Callable[[], tuple[int, tuple[int, int]]]


class Heart:
    def __init__(
        self,
        *,
        timing: LeaseTiming,
        address: str,
        capacity: int | None,
        summary: Summary,
        on_expired: Callable[[], Awaitable[None]],
        on_reaped: Callable[[], Awaitable[None]],
        after_beat: Callable[[], Awaitable[None]],
        workers: WorkersCollection | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timing = timing
        self.address = address
        self.capacity = capacity
        self.identity = WorkerIdentity.new()
        self._summary = summary
        self._on_expired = on_expired
        self._on_reaped = on_reaped
        self._after_beat = after_beat
        self._workers = workers  # `workers` on a client of its own (None: the main client)
        self._clock = clock
        self.last_success: float | None = None  # when the last acknowledged heartbeat was sent
        self.expired = False  # the renew deadline passed; bots stopped until a heartbeat succeeds
        self._registered = False
        self._failing = False
        self._deadline_moved = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def worker_id(self) -> str:
        return self.identity.id

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last successful heartbeat was sent (None: never registered)."""
        if self.last_success is None:
            return None
        return (self._clock() if now is None else now) - self.last_success

    def is_current(self, now: float | None = None) -> bool:
        """This worker may run bots: its last successful heartbeat is younger than the deadline."""
        age = self.age(now)
        return self._registered and age is not None and age < self.timing.renew_deadline

    async def register(self) -> None:
        sent = self._clock()
        await lease_db.register_worker(
            self.identity.id,
            address=self.address,
            host=self.identity.host,
            pid=self.identity.pid,
            capacity=self.capacity,
            collection=self._workers,
        )
        self._registered = True
        _log.info("Registered as worker %s (%s)", self.identity.id, self.address)
        self._succeeded(sent)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._beat_loop(), name="fleet-heartbeat"),
            asyncio.create_task(self._watchdog(), name="fleet-renew-deadline"),
        ]

    async def stop(self) -> None:
        await cancel_bounded(self._tasks, 2.0, what="The heartbeat")
        self._tasks = []

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timing.interval)
            try:
                await self.beat()
                await self._after_beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("Heartbeat failed unexpectedly")

    async def beat(self) -> bool:
        """One heartbeat (or, after being reaped, a new registration). True: it succeeded."""
        sent = self._clock()
        bots, lavalink = self._summary()
        try:
            with pymongo.timeout(max(0.5, self.timing.interval)):
                if not self._registered:
                    await self.register()
                    self._recovered()
                    return True
                alive = await lease_db.heartbeat(
                    self.identity.id, bots=bots, lavalink=lavalink, collection=self._workers
                )
        except PyMongoError as exc:
            if not self._failing:
                self._failing = True
                _log.warning("Heartbeat of worker %s failed (%s); its bots stop if none succeeds "
                             "within %.1fs of the last one", self.identity.id, exc,
                             self.timing.renew_deadline)  # fmt: skip
            return False
        if not alive:
            _log.error("Worker %s was reaped by another worker (it observed no heartbeat for "
                       "LEASE_TTL): stopping its bots and registering again", self.identity.id)  # fmt: skip
            self._registered = False
            self.last_success = None
            await self._on_reaped()
            self.identity = WorkerIdentity.new()
            return False
        self._succeeded(sent)
        self._recovered()
        return True

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            _log.info("Heartbeat of worker %s succeeds again", self.identity.id)

    def _succeeded(self, sent: float) -> None:
        self.last_success = sent if self.last_success is None else max(self.last_success, sent)
        if self.expired:
            self.expired = False
            _log.info("Worker %s is current again: its bots start again", self.identity.id)
        self._deadline_moved.set()

    async def _watchdog(self) -> None:
        """Stop every bot at the renew deadline. Its own task: a slow heartbeat write or a busy
        balancing round never delays it."""
        while True:
            self._deadline_moved.clear()
            age = self.age()
            if age is None or self.expired:
                await self._deadline_moved.wait()
                continue
            remaining = self.timing.renew_deadline - age
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._deadline_moved.wait()
                continue
            self.expired = True
            _log.error("Worker %s: no successful heartbeat for %.1fs (the renew deadline): stopping "
                       "every bot before another worker may take it over", self.identity.id, age)  # fmt: skip
            await self._on_expired()
