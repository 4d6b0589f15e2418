"""The fleet as this worker sees it: a read-only mirror of `workers`, `bot_leases` and
`voice_assignments`.

Kept current by change streams (a full reload after each (re)open, so nothing missed while a
stream was closed is lost) and by a periodic reload as a fallback; polled when the database has
no change streams. `workers` is also read directly after every heartbeat: those reads feed the
`HeartbeatObserver`, which decides who is dead. Routing, `/bots`, `/health` and `/workers` read
this mirror from memory; only decisions (a lease CAS) go to the database.

The questions other parts of the fleet ask (see docs/SCALING.md, "The fleet API"):
`owner_of(bot)`, `is_live(worker)`, `worker(id)`, `workers()`, `voice(guild, channel)`, and the
coordinator's `me`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import pymongo
from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from app.bots.backoff import Backoff
from app.bots.fleet.observer import HeartbeatObserver
from app.db import leases as lease_db
from app.db import routing as routing_db
from app.db.leases import WorkersCollection
from app.db.models import BotLease, VoiceAssignment, WorkerRecord, WorkerState
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

_UNSUPPORTED_CODES = {40573, 40324, 303}
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
# Without an event, the leases are read again this many heartbeat intervals apart anyway (5 min
# at the default interval): a safety net only, since the streams keep the mirror current and every
# reopened stream reloads. A reload of 1,000 leases costs about 40 ms of CPU.
RELOAD_EVERY_INTERVALS = 100
# Longest an idle stream's getMore waits on the server. A change comes back at once whatever this
# is; it sets how often an idle stream makes a round trip (about 0.9 ms of CPU each in PyMongo,
# three streams). A stop with the database reachable cancels the parked reads (`stop(patience=0)`,
# prompt); with it unreachable, the loops are given patience to fail and end by themselves.
STREAM_AWAIT_MS = 10_000

LeaseListener = Callable[[int, BotLease | None, BotLease | None], None]


class FleetView:
    def __init__(
        self,
        *,
        ttl: float,
        interval: float,
        me: Callable[[], str],
        me_alive: Callable[[], bool],
        on_change: Callable[[], None],
        on_lease: LeaseListener,
        workers: WorkersCollection | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._interval = interval
        self._me = me
        self._me_alive = me_alive
        self._on_change = on_change
        self._on_lease = on_lease
        self._clock = clock
        self._workers_collection = workers  # the heartbeat's own client (None: the main one)
        self.observer = HeartbeatObserver(ttl)
        self._workers: dict[str, WorkerRecord] = {}
        self._leases: dict[int, BotLease] = {}
        # Voice assignments by document id (a delete event carries only the id) and by channel.
        self._voice: dict[Any, VoiceAssignment] = {}
        self._voice_by_channel: dict[tuple[int, int], VoiceAssignment] = {}
        self._reload = asyncio.Event()
        self._reading_workers = asyncio.Lock()
        # What the change streams applied, in order: a reload keeps what they changed during
        # its read (see `reload_leases`).
        self._stream_seq = 0
        self._streamed: dict[int, int] = {}
        self._voice_streamed: dict[Any, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.mode: Literal["change_stream", "poll"] | None = None
        # Checked by the loops too: a cancellation can be lost inside the driver's server selection
        # while the database is down (asyncio.wait_for on Python 3.11), and a loop would go on.
        self._stopping = False
        self._stopped = asyncio.Event()

    # -- loading ----------------------------------------------------------------------------------

    async def refresh_workers(self) -> bool:
        """Read every worker (after each heartbeat): the observer's evidence. False: the read
        failed, and observation starts again from zero. One read at a time (after a heartbeat,
        or at an expiry): an older read finishing last would look like a counter going back."""
        async with self._reading_workers:
            return await self._read_workers()

    async def _read_workers(self) -> bool:
        try:
            # As long as a heartbeat may take: a slow read is still evidence (its time is noted
            # when it returns, which only shortens what it proves), and a read cut short makes
            # the driver drop its connection, so the next heartbeat would pay for a new one.
            with pymongo.timeout(max(0.5, self.ttl * 2 / 3)):
                records = await lease_db.all_workers(self._workers_collection)
        except PyMongoError as exc:
            self.observer.lost_sight()
            _log.debug("Reading the workers failed (%s)", exc)
            return False
        before = self._membership()
        self._workers = {record.id: record for record in records}
        self.observer.observe({record.id: record.heartbeat for record in records}, self._clock())
        if self._membership() != before or self.dead_workers():
            self._on_change()
        return True

    async def reload_leases(self) -> None:
        """Read every lease again. A lease the change stream updated while the read was under way
        keeps the stream's version: the read may predate it, and the stream will not deliver
        that change again (a stale read kept would hide, say, another worker's claim until the
        next reload; the stream delivers every later change, so its version is never stuck)."""
        mark = self._stream_seq
        read = {lease.id: lease for lease in await lease_db.all_leases()}
        streamed = {client_id for client_id, seq in self._streamed.items() if seq > mark}
        leases = {client_id: lease for client_id, lease in read.items() if client_id not in streamed}
        leases.update(
            {client_id: self._leases[client_id] for client_id in streamed if client_id in self._leases}
        )
        self._streamed = {client_id: seq for client_id, seq in self._streamed.items() if seq > mark}
        old, self._leases = self._leases, leases
        for client_id in old.keys() | leases.keys():
            before, after = old.get(client_id), leases.get(client_id)
            if before != after:
                self._on_lease(client_id, before, after)

    async def reload_voice(self) -> None:
        """Read every assignment again (the mirror stays whole meanwhile); as for the leases, an
        assignment the stream changed during the read keeps the stream's version."""
        mark = self._stream_seq
        read = await routing_db.all_voice()
        streamed = {doc_id for doc_id, seq in self._voice_streamed.items() if seq > mark}
        current = {doc_id: self._voice[doc_id] for doc_id in streamed if doc_id in self._voice}
        self._voice_streamed = {doc_id: seq for doc_id, seq in self._voice_streamed.items() if seq > mark}
        self._voice = {}
        self._voice_by_channel = {}
        for assignment in read:
            if assignment.id not in streamed:
                self._put_voice(assignment)
        for assignment in current.values():
            self._put_voice(assignment)

    def _put_voice(self, assignment: VoiceAssignment) -> None:
        old = self._voice.pop(assignment.id, None)
        if old is not None and self._voice_by_channel.get((old.guild_id, old.channel_id)) is old:
            del self._voice_by_channel[(old.guild_id, old.channel_id)]
        self._voice[assignment.id] = assignment
        self._voice_by_channel[(assignment.guild_id, assignment.channel_id)] = assignment

    def _drop_voice(self, document_id: Any) -> None:
        old = self._voice.pop(document_id, None)
        if old is not None and self._voice_by_channel.get((old.guild_id, old.channel_id)) is old:
            del self._voice_by_channel[(old.guild_id, old.channel_id)]

    def mark_freed(self, worker_id: str) -> None:
        """The database has just freed every lease of this worker (gone, never to return: ids are
        never reused): the mirror's leases naming it are free too. Only those still naming it: a
        claim by another worker that the stream already delivered stays. The stream's own echo of
        the freeing changes nothing afterwards, and any later change of a lease overrides this."""
        for client_id, lease in list(self._leases.items()):
            if lease.owner == worker_id:
                self._leases[client_id] = lease.model_copy(update={"owner": None, "status": None})

    def needs_reload(self) -> None:
        self._reload.set()

    def _membership(self) -> set[tuple[str, str]]:
        return {(record.id, record.state.value) for record in self._workers.values()}

    # -- following ------------------------------------------------------------------------------

    def start(self, *, mode: str = "auto") -> None:
        """`mode` is RELOAD_MODE: "poll" reads the leases every interval instead of streaming."""
        self._stopping = False
        self._stopped.clear()
        self._tasks = [
            asyncio.create_task(self._refresh_leases(), name="fleet-leases-refresh"),
            asyncio.create_task(self._read_at_expiry(), name="fleet-expiry-read"),
        ]
        if mode != "poll":
            self._tasks += [
                asyncio.create_task(
                    self._follow(WorkerRecord.get_pymongo_collection(), self._apply_worker, "workers"),
                    name="fleet-workers-stream",
                ),
                asyncio.create_task(
                    self._follow(BotLease.get_pymongo_collection(), self._apply_lease, "bot_leases"),
                    name="fleet-leases-stream",
                ),
                asyncio.create_task(
                    self._follow(
                        VoiceAssignment.get_pymongo_collection(), self._apply_voice, "voice_assignments"
                    ),
                    name="fleet-voice-stream",
                ),
            ]
        else:
            self.mode = "poll"

    async def stop(self, *, patience: float = 0.0) -> None:
        """Stop following. `patience`: seconds to let the loops notice and end by themselves
        before they are cancelled (with the database unreachable they are inside the driver's
        server selection, and a task cancelled there can leave the client's topology lock
        broken, so that closing the client later hangs). With it reachable, pass 0: a stream
        parked in its getMore (up to STREAM_AWAIT_MS) ends at once when cancelled."""
        self._stopping = True
        self._stopped.set()
        pending = [task for task in self._tasks if not task.done()]
        if pending and patience > 0:
            await asyncio.wait(pending, timeout=patience)
        await cancel_bounded(self._tasks, 1.0, what="The fleet mirror")
        self._tasks = []

    async def _refresh_leases(self) -> None:
        while not self._stopping:
            every = self._interval if self.mode == "poll" else self._interval * RELOAD_EVERY_INTERVALS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._first(self._reload)
            if self._stopping:
                return
            self._reload.clear()
            try:
                await self.reload_leases()
                await self.reload_voice()
            except PyMongoError as exc:
                _log.debug("Reloading the leases failed (%s)", exc)
            except ValidationError as exc:  # a malformed document: say so, and keep reloading
                _log.warning("Reloading the leases failed: a malformed document (%s)",
                             exc.errors(include_url=False, include_input=False))  # fmt: skip

    async def _read_at_expiry(self) -> None:
        """Read the workers once more when a silence reaches LEASE_TTL, rather than at the next
        read after our next heartbeat (up to an interval later): a dead worker's bots are taken
        over that much sooner. Only a read proves anything, so this is just one more read, at
        the moment it can prove something; none while no worker is silent."""
        while not self._stopping:
            due = self.observer.next_expiry(besides=self._me())
            wait = self._interval if due is None else min(self._interval, max(0.0, due - self._clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._stopped.wait()
            if self._stopping:
                return
            if due is not None and self._clock() >= due and not self.observer.read_since(due):
                await self.refresh_workers()

    async def _follow(
        self, collection: AsyncCollection[Any], apply: Callable[[dict[str, Any]], None], what: str
    ) -> None:
        resume_token: Any = None
        backoff = Backoff(initial=0.5, maximum=10.0)
        while not self._stopping:
            try:
                stream = await collection.watch(
                    full_document="updateLookup", resume_after=resume_token, max_await_time_ms=STREAM_AWAIT_MS
                )
                async with stream:
                    self.mode = "change_stream"
                    self._reload.set()  # catch up on what changed while no stream was open
                    backoff.reset()
                    # `alive`: a dropped or renamed collection (or database) invalidates the
                    # stream, and a closed stream's try_next returns None at once, forever:
                    # without this check the loop would spin and never yield to the event loop.
                    while not self._stopping and stream.alive:
                        change = await stream.try_next()  # back at a change, or after STREAM_AWAIT_MS
                        resume_token = stream.resume_token
                        if change is not None:
                            self._apply_one(apply, change, what)
                if not self._stopping:
                    # Invalidated: its last token cannot be resumed after; start afresh (the
                    # reopening reloads everything) after a pause, in case it happens again.
                    resume_token = None
                    await self._pause(
                        backoff, what, "the stream was invalidated (collection dropped or renamed)"
                    )
            except OperationFailure as exc:
                if exc.code in _UNSUPPORTED_CODES or "replica set" in str(exc).lower():
                    _log.warning("No change streams (%s): polling %s every %.1fs", exc, what, self._interval)
                    self.mode = "poll"
                    return
                resume_token = None
                await self._pause(backoff, what, exc)
            except PyMongoError as exc:
                await self._pause(backoff, what, exc)

    @staticmethod
    def _apply_one(apply: Callable[[dict[str, Any]], None], change: dict[str, Any], what: str) -> None:
        """A document that is not what the model says (written by hand, or by another version)
        is skipped with a warning: it must not end the stream, and with it every later change."""
        try:
            apply(change)
        except ValidationError as exc:
            document_id = change.get("documentKey", {}).get("_id")
            _log.warning("Ignored a malformed document in %s (_id %r): %s",
                         what, document_id, exc.errors(include_url=False, include_input=False))  # fmt: skip

    async def _pause(self, backoff: Backoff, what: str, exc: BaseException | str) -> None:
        delay = backoff.next_delay()
        _log.debug("Change stream on %s interrupted (%s); reopening in %.1fs", what, exc, delay)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    async def _first(self, event: asyncio.Event) -> None:
        """Wait for `event`, or for the mirror to stop."""
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopped.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _apply_worker(self, change: dict[str, Any]) -> None:
        worker_id = change.get("documentKey", {}).get("_id")
        document = change.get("fullDocument")
        if not isinstance(worker_id, str):
            return
        before = self._membership()
        if document is None:
            self._workers.pop(worker_id, None)
            self.observer.forget(worker_id)
        else:
            record = WorkerRecord.model_validate(document)
            self._workers[worker_id] = record
            # A changed counter only ever restarts a silence: safe to take from a stream.
            self.observer.saw(worker_id, record.heartbeat, self._clock())
        if self._membership() != before:
            self._on_change()

    def _apply_lease(self, change: dict[str, Any]) -> None:
        client_id = change.get("documentKey", {}).get("_id")
        if not isinstance(client_id, int):
            return
        document = change.get("fullDocument")
        self._stream_seq += 1
        self._streamed[client_id] = self._stream_seq
        before = self._leases.get(client_id)
        if document is None:
            self._leases.pop(client_id, None)
            after = None
        else:
            after = self._leases[client_id] = BotLease.model_validate(document)
        if before != after:
            self._on_lease(client_id, before, after)

    def _apply_voice(self, change: dict[str, Any]) -> None:
        document_id = change.get("documentKey", {}).get("_id")
        document = change.get("fullDocument")
        self._stream_seq += 1
        self._voice_streamed[document_id] = self._stream_seq
        if document is None:
            self._drop_voice(document_id)
        else:
            self._put_voice(VoiceAssignment.model_validate(document))

    # -- questions --------------------------------------------------------------------------------

    def worker(self, worker_id: str) -> WorkerRecord | None:
        return self._workers.get(worker_id)

    def workers(self) -> list[WorkerRecord]:
        """Every registered worker, oldest first (the order every worker agrees on)."""
        return sorted(self._workers.values(), key=lambda w: (w.started_at or _FAR_FUTURE, w.id))

    def is_live(self, worker_id: str) -> bool:
        """Registered and not observed dead (a draining worker is live: it still runs bots)."""
        if worker_id == self._me():
            return self._me_alive()
        return worker_id in self._workers and not self.observer.is_dead(worker_id)

    def state_of(self, worker_id: str) -> Literal["active", "draining", "dead"] | None:
        record = self._workers.get(worker_id)
        if record is None:
            return None
        if not self.is_live(worker_id):
            return "dead"
        return "draining" if record.state is WorkerState.DRAINING else "active"

    def active_workers(self) -> list[WorkerRecord]:
        """Live workers that take bots: what the balancer spreads the fleet over."""
        return [w for w in self.workers() if w.state is WorkerState.ACTIVE and self.is_live(w.id)]

    def dead_workers(self) -> dict[str, int]:
        me = self._me()
        return {wid: counter for wid, counter in self.observer.dead().items() if wid != me}

    def forget_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)
        self.observer.forget(worker_id)

    def heartbeat_age(self, worker_id: str) -> float | None:
        """Seconds since this worker saw that worker's heartbeat counter change."""
        return self.observer.silent_for(worker_id, self._clock())

    def lease(self, client_id: int) -> BotLease | None:
        return self._leases.get(client_id)

    def leases_snapshot(self) -> dict[int, BotLease]:
        return dict(self._leases)

    def owner_of(self, client_id: int) -> WorkerRecord | None:
        """The live worker that holds the bot's lease, or None (free, or its owner is dead)."""
        lease = self._leases.get(client_id)
        if lease is None or lease.owner is None or not self.is_live(lease.owner):
            return None
        return self._workers.get(lease.owner)

    def voice(self, guild_id: int, channel_id: int) -> VoiceAssignment | None:
        """The bot assigned to that voice channel, fleet-wide, as last mirrored."""
        return self._voice_by_channel.get((guild_id, channel_id))

    def lease_counts(self) -> dict[str, int]:
        return dict(Counter(lease.owner for lease in self._leases.values() if lease.owner is not None))

    def unknown_owners(self) -> set[str]:
        return {
            lease.owner
            for lease in self._leases.values()
            if lease.owner is not None and lease.owner not in self._workers
        }
