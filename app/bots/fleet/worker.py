"""This worker: its registration, its heartbeat, and its renew deadline.

One heartbeat (one write) every `LEASE_TTL / 5` renews every lease the worker holds. The worker
measures the age of its last *successful* heartbeat from the moment it sent it; at the renew
deadline (`LEASE_TTL * 2/3`) it stops all its bots at once, before anyone can observe it dead
(LEASE_TTL after they first saw that heartbeat, at the earliest). A heartbeat that matches no
document means another worker reaped this one: its bots stop, and it registers again under a
new id. These are the only ways a worker loses bots without releasing them (docs/SCALING.md).

A slow heartbeat is not a failed one. What bounds the lease is when a heartbeat was *sent* (an
observer's clock for it starts no earlier than its landing), never how long its answer took: so
a heartbeat is given until the renew deadline to answer, and the next one is sent as soon as it
answers (or after one interval, whichever is later).
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
from app.db.models import WorkerRecord
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

# Heartbeats waiting on the database at once. Each waits up to the renew deadline (a late success
# still counts from its send time); beyond this a busy database gets more load, not more
# evidence, and the heartbeat client's small pool stays free for the observer's reads.
MAX_BEATS_IN_FLIGHT = 2


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
        self._slow = False
        self._deadline_moved = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._after_task: asyncio.Task[None] | None = None
        # Registration and the reaction to being reaped, one at a time (heartbeats overlap).
        self._registering = asyncio.Lock()

    @property
    def worker_id(self) -> str:
        return self.identity.id

    @property
    def failing(self) -> bool:
        """The last heartbeat failed (the database is unreachable or too slow right now)."""
        return self._failing

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
        await self._warm_up()

    async def _warm_up(self) -> None:
        """Open the connections the heartbeat and the observer's reads will use, now, while the
        database answers quickly: on a slow database a new connection costs a heartbeat extra
        round trips (the handshake) that can push it past the renew deadline. The driver keeps
        idle connections open, so this is paid once (and again after an outage)."""
        collection = self._workers if self._workers is not None else WorkerRecord.get_pymongo_collection()
        with contextlib.suppress(PyMongoError), pymongo.timeout(max(0.5, self.timing.interval)):
            await asyncio.gather(
                *(
                    collection.find_one({"_id": self.identity.id}, {"_id": 1})
                    for _ in range(MAX_BEATS_IN_FLIGHT + 1)
                ),
                return_exceptions=True,  # every failure retrieved: none logged as "never retrieved"
            )

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._beat_loop(), name="fleet-heartbeat"),
            asyncio.create_task(self._watchdog(), name="fleet-renew-deadline"),
        ]

    async def stop(self, *, patience: float = 0.0) -> None:
        """Stop beating. `patience`: seconds to let writes and reads already sent end by
        themselves before they are cancelled (see `FleetView.stop`)."""
        await cancel_bounded(self._tasks, 2.0, what="The heartbeat")
        self._tasks = []
        pending = [
            task for task in (*self._in_flight, self._after_task) if task is not None and not task.done()
        ]
        if pending and patience > 0:
            await asyncio.wait(pending, timeout=patience)
        await cancel_bounded([*self._in_flight, self._after_task], 2.0, what="The heartbeat's writes")

    async def _beat_loop(self) -> None:
        """A heartbeat every interval, or as soon as the previous one answers if it took longer.
        Only when one has waited half the renew deadline does another go out beside it (on
        another connection: its own connection may be the one that is stuck); a new connection
        costs a slow database more round trips than the write itself."""
        previous: asyncio.Task[None] | None = None
        sent = self._clock()
        while True:
            await asyncio.sleep(max(0.0, sent + self.timing.interval - self._clock()))
            if previous is not None and not previous.done():
                patience = sent + self.timing.renew_deadline / 2 - self._clock()
                if patience > 0:
                    await asyncio.wait({previous}, timeout=patience)
            while len(self._in_flight) >= MAX_BEATS_IN_FLIGHT:
                await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            sent = self._clock()
            previous = asyncio.create_task(self._beat_once(), name="fleet-heartbeat-write")
            self._in_flight.add(previous)
            previous.add_done_callback(self._in_flight.discard)

    async def _beat_once(self) -> None:
        try:
            if await self.beat():
                self._read_fleet()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("Heartbeat failed unexpectedly")

    def _read_fleet(self) -> None:
        """After a successful heartbeat: the observer's read of every worker, one at a time."""
        if self._after_task is None or self._after_task.done():
            self._after_task = asyncio.create_task(self._after_beat_guarded(), name="fleet-read-workers")

    async def _after_beat_guarded(self) -> None:
        try:
            await self._after_beat()
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("Reading the fleet after a heartbeat failed unexpectedly")

    async def beat(self) -> bool:
        """One heartbeat (or, after being reaped, a new registration). True: it succeeded.

        Bounded by the renew deadline, not by the interval: an answer that comes late still
        proves the lease from the moment the heartbeat was sent (observers cannot have started
        counting its silence earlier), so it keeps the bots running."""
        sent = self._clock()
        identity = self.identity
        bots, lavalink = self._summary()
        try:
            with pymongo.timeout(max(0.5, self.timing.renew_deadline)):
                if not self._registered:
                    async with self._registering:
                        if not self._registered:
                            await self.register()
                            self._recovered()
                    return True
                alive = await lease_db.heartbeat(
                    identity.id, bots=bots, lavalink=lavalink, collection=self._workers
                )
        except PyMongoError as exc:
            if not self._failing:
                self._failing = True
                _log.warning("Heartbeat of worker %s failed (%s); its bots stop if none succeeds "
                             "within %.1fs of the last one", identity.id, exc,
                             self.timing.renew_deadline)  # fmt: skip
            return False
        if identity is not self.identity:
            return False  # about an id this worker has already given up (it was reaped)
        if not alive:
            async with self._registering:
                if identity is not self.identity:
                    return False  # another heartbeat of the same id handled it
                _log.error("Worker %s was reaped by another worker (it observed no heartbeat for "
                           "LEASE_TTL): stopping its bots and registering again", identity.id)  # fmt: skip
                self._registered = False
                self.last_success = None
                self.identity = WorkerIdentity.new()  # before any await: later answers are stale
                await self._on_reaped()
            return False
        took = self._clock() - sent
        if took > self.timing.interval and not self._slow:  # once per slow spell, not every beat
            _log.info("Heartbeat of worker %s took %.1fs (the database is slow); it still counts from "
                      "when it was sent", identity.id, took)  # fmt: skip
        self._slow = took > self.timing.interval
        self._succeeded(sent)
        self._recovered()
        return True

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            _log.info("Heartbeat of worker %s succeeds again", self.identity.id)
            warm = asyncio.create_task(self._warm_up(), name="fleet-heartbeat-warm-up")
            self._in_flight.add(warm)
            warm.add_done_callback(self._in_flight.discard)

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
