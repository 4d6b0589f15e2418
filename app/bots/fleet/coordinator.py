"""This worker's place in the fleet: the one object the `BotManager` owns to know which bots it
may run (docs/SCALING.md).

It wires the pieces together: the `Heart` (registration, heartbeat, renew deadline), the
`FleetView` (mirror of `workers` and `bot_leases`), the `LeaseBook` (leases held), the
`Balancer` (claims and hand-overs) and the `StatusPublisher`. It reacts to what the mirror sees
happen to a lease this worker holds (taken by another: the bot stops at once; a restart asked
from another worker: the bot restarts), and drains the worker on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Collection, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import pymongo
from pymongo.errors import PyMongoError

from app.bots.fleet.balancer import Balancer
from app.bots.fleet.host import BotHost
from app.bots.fleet.leases import LeaseBook
from app.bots.fleet.requests import RequestRelay
from app.bots.fleet.starts import StartPacer
from app.bots.fleet.status import StatusPublisher
from app.bots.fleet.view import FleetView
from app.bots.fleet.worker import Heart, LeaseTiming
from app.db import leases as lease_db
from app.db.leases import FleetCollections
from app.db.models import BotLease, WorkerRecord, WorkerState
from app.settings import Settings

_log = logging.getLogger(__name__)

# How long a draining worker waits for one database write before giving up on it (the others
# then take its bots over once its heartbeat has stood still for LEASE_TTL).
DRAIN_WRITE_TIMEOUT = 5.0
# The same first write when the driver already knows the database is unreachable (or this
# worker's heartbeat is failing): a short probe, then the drain goes straight to closing.
DRAIN_PROBE_TIMEOUT = 1.0
# How long the heartbeat, the mirror and the relay get to end by themselves at a drain (with the
# database unreachable a call fails after the driver's server selection timeout, 5 s, and a change
# stream retries once: 10 s) before being cancelled inside the driver, which can break its client
# so that closing it hangs. A healthy stream looks every second, so this is rarely waited for.
STOP_PATIENCE = 12.0
# A SIGTERMed worker starts graceful hand-overs (save, leave voice, close, release) for this
# long (at most 40% of SHUTDOWN_TIMEOUT); the bots it has not reached by then are stopped by the
# paced stop (`fleet_stop.stop_runners`), keep their leases and are taken over after LEASE_TTL.
# The whole drain fits SHUTDOWN_TIMEOUT (tests/ops/deploy_checks.py HANDOVER_SECONDS).
DRAIN_HAND_OVER_SECONDS = 15.0
_HAND_OVER_SHARE = 0.4
_PATIENCE_SHARE = 0.25  # of SHUTDOWN_TIMEOUT at most, for the background loops to end


LEASE_STATES = ("held", "expired", "unowned")


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker as `GET /workers` shows it."""

    id: str
    address: str
    state: Literal["active", "draining", "dead"]
    bots: int
    heartbeat_age: float | None
    capacity: int | None
    me: bool


def worker_address(settings: Settings) -> str:
    """WORKER_ADDRESS, or `http://HOST:HTTP_PORT` with a wildcard bind replaced by this host's
    address (what other workers and operators can reach)."""
    if settings.worker_address:
        return settings.worker_address.rstrip("/")
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


class FleetCoordinator:
    def __init__(
        self, *, host: BotHost, settings: Settings, coordination: FleetCollections | None = None
    ) -> None:
        """`coordination`: `workers` and `bot_leases` through a client of their own, so the
        heartbeat and a hand-over never queue behind the bots' database work."""
        coordination = coordination or FleetCollections()
        self._coordination = coordination
        self._host = host
        self._reload_mode = settings.reload_mode
        self._shutdown_timeout = settings.shutdown_timeout
        self.timing = timing = LeaseTiming(settings.lease_ttl)
        self.heart = Heart(
            timing=timing,
            address=worker_address(settings),
            capacity=settings.worker_capacity,
            summary=host.summary,
            on_expired=self._expired,
            on_reaped=self._reaped,
            after_beat=self._after_beat,
            workers=coordination.workers,
        )
        self.book = LeaseBook(lambda: self.heart.worker_id)
        self.pacer = StartPacer(host=host, still_held=self.book.may_start, refused=self._refused)
        self.view = FleetView(
            ttl=timing.ttl,
            interval=timing.interval,
            me=lambda: self.heart.worker_id,
            me_alive=self.heart.is_current,
            on_change=self._membership_changed,
            on_lease=self._lease_changed,
            workers=coordination.workers,
        )
        self.balancer = Balancer(
            host=host,
            view=self.view,
            book=self.book,
            heart=self.heart,
            pacer=self.pacer,
            interval=timing.interval,
        )
        # Interactions forwarded to this worker's bots, and forwarded from here (docs/SCALING.md).
        self.relay = RequestRelay(
            me=lambda: self.heart.worker_id,
            can_deliver=host.can_take_interaction,
            deliver=lambda request: host.take_interaction(
                request.target_bot,
                request.payload,
                deferred=request.deferred,
                public_defer=request.public_defer,
            ),
        )
        self.publisher = StatusPublisher(host=host, book=self.book, worker_id=lambda: self.heart.worker_id)
        self._background: set[asyncio.Task[Any]] = set()
        self.draining = False

    # -- the fleet API (routing, /bots, /health, /workers read these; see docs/SCALING.md) --------

    @property
    def me(self) -> str:
        """This worker's id (`host:pid:random`; a new one after a re-registration)."""
        return self.heart.worker_id

    def owner_of(self, client_id: int) -> WorkerRecord | None:
        """The live worker running the bot (its id and `address`), or None while none does."""
        return self.view.owner_of(client_id)

    def is_live(self, worker_id: str) -> bool:
        return self.view.is_live(worker_id)

    def worker(self, worker_id: str) -> WorkerRecord | None:
        return self.view.worker(worker_id)

    def holds(self, client_id: int) -> bool:
        """This worker holds the bot's lease (and runs it while its heartbeat is current)."""
        return self.book.holds(client_id)

    def epoch_of(self, client_id: int) -> int | None:
        return self.book.epoch_of(client_id)

    def awaiting_start(self) -> dict[int, int]:
        """The bots whose lease this worker holds and that do not run here yet: bot -> epoch."""
        running = set(self._host.running())
        return {
            client_id: held.epoch
            for client_id, held in self.book.held.items()
            if client_id not in running and client_id not in self.book.releasing
        }

    def may_run(self, client_id: int | None = None, epoch: int | None = None) -> bool:
        """This worker may run bots now (heartbeat current, not draining); with a bot and an
        epoch, also: it holds that bot's lease at that epoch and is not handing it over. The
        host asks this after the last await of a start, so no start outlives its lease."""
        if not (self.heart.is_current() and not self.draining):
            return False
        return client_id is None or epoch is None or self.book.may_start(client_id, epoch)

    def workers(self) -> list[WorkerView]:
        counts = self.view.lease_counts()
        views: list[WorkerView] = []
        for record in self.view.workers():
            state = self.view.state_of(record.id) or "dead"
            if record.id == self.me:
                state = "draining" if self.draining else ("active" if self.heart.is_current() else "dead")
                age = self.heart.age()
            else:
                age = self.view.heartbeat_age(record.id)
            views.append(WorkerView(
                id=record.id, address=record.address, state=state, bots=counts.get(record.id, 0),
                heartbeat_age=None if age is None else round(age, 3), capacity=record.capacity,
                me=record.id == self.me,
            ))  # fmt: skip
        return views

    def lavalink_nodes(self) -> tuple[int, int]:
        """(connected, configured) Lavalink nodes over the other live workers, as their last
        heartbeat said (this worker's own are counted live by the caller)."""
        connected = total = 0
        for record in self.view.workers():
            if record.id != self.me and self.view.is_live(record.id):
                connected += record.lavalink_connected
                total += record.lavalink_total
        return connected, total

    def lease_states(self) -> dict[str, int]:
        """The enabled bots by the state of their lease, fleet-wide, from the mirror (what
        `chorus_leases{state}` exports): `held` by a live worker, `expired` (its owner was observed
        dead: it is up for takeover) or `unowned` (released, or never claimed)."""
        counts: dict[str, int] = dict.fromkeys(LEASE_STATES, 0)
        for client_id in self._host.wanted():
            lease = self.view.lease(client_id)
            if lease is None or lease.owner is None:
                counts["unowned"] += 1
            elif self.view.is_live(lease.owner):
                counts["held"] += 1
            else:
                counts["expired"] += 1
        return counts

    def live_workers(self) -> int:
        return sum(1 for record in self.view.workers() if self.view.is_live(record.id)) or 1

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register, read the fleet, take this worker's share at once, then follow changes."""
        await self.heart.register()
        self.heart.start()  # beating (and watching its deadline) while the first round starts bots
        await self.view.refresh_workers()
        await self.view.reload_leases()
        await self.view.reload_voice()
        await self.balancer.run_round()
        self.view.start(mode=self._reload_mode)
        self.relay.start(mode=self._reload_mode)
        self.balancer.start()
        self.publisher.start()

    async def balance_now(self) -> None:
        """A round now (after an API change), rather than at the next event or interval."""
        try:
            await self.balancer.run_round()
        except PyMongoError as exc:
            _log.warning("Balancing round failed (%s); the next one retries", exc)

    def wake(self) -> None:
        self.balancer.wake()

    def status_changed(self, client_id: int) -> None:
        self.publisher.changed(client_id)
        self.pacer.status_changed(client_id)

    async def give_up(self, client_id: int, *, deleted: bool) -> None:
        """The bot was disabled (its lease is released, kept with its epoch) or deleted (its
        lease is removed). Called once its runner has stopped."""
        try:
            if deleted:
                await self.book.delete(client_id)
            elif self.book.holds(client_id):
                await self.book.release(client_id)
        except PyMongoError as exc:
            _log.warning("Bot %d: its lease was not given up (%s); the balancer retries", client_id, exc)

    async def recheck(self, client_id: int) -> None:
        """A fenced write said another owner wrote first: read the lease and stop if it is lost."""
        held = self.book.held.get(client_id)
        if held is None:
            return
        try:
            lease = await lease_db.get_lease(client_id)
        except PyMongoError as exc:
            _log.warning("Bot %d: its lease could not be checked (%s)", client_id, exc)
            return
        self._lease_changed(client_id, None, lease)

    async def drain(self) -> None:
        """SIGTERM: stop taking bots, hand every bot over (snapshot, leave voice, close, release at
        once, so the others claim it at once), then leave the fleet.

        Bounded by SHUTDOWN_TIMEOUT as a whole: graceful hand-overs start for
        DRAIN_HAND_OVER_SECONDS at most, and with the database unreachable none starts at all
        (its saves and releases could not be written). The bots not handed over are stopped by
        the host's paced stop (the one `stop_runners`, a batched save first when the database is
        reachable), leases kept, and the others take them after LEASE_TTL as after a crash. The
        background loops get what is left (STOP_PATIENCE at most) to end."""
        started = time.monotonic()
        total = self._shutdown_timeout
        patience = min(STOP_PATIENCE, total * _PATIENCE_SHARE)
        self.draining = True
        await self.balancer.stop()
        await self.pacer.stop()
        await self.publisher.stop()
        me = self.me
        workers = self._coordination.workers
        probe = DRAIN_WRITE_TIMEOUT if self._database_looks_reachable() else DRAIN_PROBE_TIMEOUT
        reachable = await self._bounded(
            lease_db.set_worker_state(me, WorkerState.DRAINING, collection=workers),
            "marking it draining",
            timeout=probe,
        )
        held = list(self.book.held)
        released: set[int] = set()
        if not reachable:
            _log.warning("Worker %s drains with the database unreachable: closing its %d bot(s) without "
                         "a hand-over; the others take them after LEASE_TTL", me, len(held))  # fmt: skip
        elif held:
            _log.info("Worker %s drains: handing over %d bot(s)", me, len(held))
            # Every player first, in one bulk write (the paced stop's save): a hand-over then
            # only closes and releases, and a drain cut short still resumes every player.
            await self._host.save_players(held, timeout=DRAIN_WRITE_TIMEOUT)
            released = await self.book.hand_over(
                self._host,
                held,
                write_timeout=DRAIN_WRITE_TIMEOUT,
                collection=self._coordination.leases,
                deadline=started + min(DRAIN_HAND_OVER_SECONDS, total * _HAND_OVER_SHARE),
            )
        late = [client_id for client_id in held if client_id not in released]
        if late and reachable:
            # Out of time for graceful hand-overs (or a close not proven, or the database went
            # meanwhile): stop them now, keeping the leases: the others take them after
            # LEASE_TTL, as after a crash, and resume them from the batched save.
            _log.warning("Worker %s: %d bot(s) not handed over; stopping them, leases kept",
                         me, len(late))  # fmt: skip
        if late:
            remaining = started + total - patience - time.monotonic()
            await self._host.close_bots(
                late, deadline=max(1.0, remaining), save=reachable and not self.book.unreachable
            )
        # With the database unreachable, the background loops end by themselves (a call fails
        # after the driver's server selection) before anything is cancelled: a task cancelled
        # inside the driver's server selection can break the client's topology lock, and closing
        # the client then hangs. With it reachable, the streams, parked in a getMore for up to
        # 10 s, are cancelled at once.
        parked = reachable and not self.book.unreachable and self._database_looks_reachable()
        await asyncio.gather(
            self.heart.stop(patience=patience),
            self.view.stop(patience=0.0 if parked else patience),
            self.relay.stop(patience=0.0 if parked else patience),
        )
        if reachable and not self.book.unreachable and len(released) == len(held):
            await self._bounded(lease_db.remove_worker(me, collection=workers), "leaving the fleet")
        elif reachable:
            _log.warning("Worker %s: %d bot(s) not handed over; the others take them after LEASE_TTL",
                         me, len(held) - len(released))  # fmt: skip
        _log.info("Worker %s drained in %.1fs", me, time.monotonic() - started)
        for task in list(self._background):
            task.cancel()

    async def drop_bots(self, client_ids: Collection[int], *, deadline: float | None = None) -> int:
        """End these bots' sessions at once, without touching the database: the renew deadline
        passed or the worker was reaped, so every socket must start closing now (not a paced
        stop: that is the drain's, `close_bots`). Returns how many were confirmed closed by
        `deadline` (monotonic)."""
        if not client_ids:
            return 0
        closed = 0

        async def drop(client_id: int) -> None:
            nonlocal closed
            await self._host.drop_bot(client_id)
            closed += 1

        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        work = asyncio.ensure_future(asyncio.gather(*(drop(client_id) for client_id in client_ids)))
        done, _ = await asyncio.wait({work}, timeout=remaining)
        if not done:
            work.add_done_callback(lambda future: None if future.cancelled() else future.exception())
            work.cancel()
            _log.warning("%d of %d bot session(s) not confirmed closed in time; the process exit closes "
                         "the rest", len(client_ids) - closed, len(client_ids))  # fmt: skip
        elif (error := work.exception()) is not None:
            _log.warning("Closing bot sessions failed: %r", error)
        return closed

    def _database_looks_reachable(self) -> bool:
        """What the driver already knows, without a round trip: a server it can write to, and a
        heartbeat that is not failing."""
        if self.heart.failing:
            return False
        collection = self._coordination.workers
        if collection is None:
            collection = WorkerRecord.get_pymongo_collection()
        try:
            return collection.database.client.topology_description.has_writable_server()
        except Exception:  # an unopened client: let the write decide
            return True

    async def _bounded(
        self, write: Coroutine[Any, Any, Any], what: str, *, timeout: float = DRAIN_WRITE_TIMEOUT
    ) -> bool:
        """False: the write failed or did not finish in time."""
        try:
            with pymongo.timeout(timeout):
                await write
        except PyMongoError as exc:
            _log.warning("Worker %s: %s failed (%s)", self.me, what, exc)
            return False
        return True

    # -- reactions ----------------------------------------------------------------------------------

    async def _after_beat(self) -> None:
        await self.view.refresh_workers()

    async def _expired(self) -> None:
        self.pacer.clear()
        await self.drop_bots(list(self._host.running()))

    async def _reaped(self) -> None:
        self.book.clear()
        self.pacer.clear()
        await self.drop_bots(list(self._host.running()))

    async def _refused(self, client_id: int) -> None:
        """The host will not run the bot (disabled meanwhile): its lease goes back."""
        await self.book.release(client_id)

    def _membership_changed(self) -> None:
        self.balancer.wake()

    def _lease_changed(self, client_id: int, before: BotLease | None, after: BotLease | None) -> None:
        held = self.book.held.get(client_id)
        if (
            held is not None
            and client_id in self.book.releasing
            and after is not None
            and after.owner is None
            and after.epoch == held.epoch
        ):
            held = None  # our own hand-over's release, seen before the book forgot the lease
        if held is not None:
            if (
                after is None
                or after.epoch > held.epoch
                or (after.epoch == held.epoch and after.owner != self.me)
            ):
                self.book.drop(client_id)
                self.pacer.discard([client_id])
                now = "gone" if after is None else f"{after.owner} epoch {after.epoch}"
                _log.warning("Bot %d: its lease (epoch %d) is now %s; stopping it at once",
                             client_id, held.epoch, now)  # fmt: skip
                self._spawn(self._host.drop_bot(client_id), f"drop-{client_id}")
            elif after.epoch == held.epoch and after.restarts > held.restarts:
                held.restarts = after.restarts
                _log.info("Bot %d: a restart was asked for; restarting it", client_id)
                self._spawn(self._host.restart_here(client_id), f"restart-{client_id}")
        if after is None or after.owner is None or before is None or before.owner != after.owner:
            self.balancer.wake()

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
