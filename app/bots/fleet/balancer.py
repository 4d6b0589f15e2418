"""Balance: every live worker runs its share of the enabled bots, within one.

The rules are pure functions of one worker's view (`compute_targets`, `plan_round`), so every
worker that sees the same fleet computes the same targets, and they are unit-tested without a
database. The `Balancer` applies them: one round at a time, on a change seen in `workers` or
`bot_leases`, and by the clock as a fallback: every heartbeat interval while something is under
way, every `SETTLED_FALLBACK` intervals once the fleet is settled (a round that found nothing to
do, nothing to claim, every member on its target and the membership stable). A round is O(bots);
an idle worker of 1,000 bots ran one every 3 s for nothing (`make bench`, periodic section).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.db import leases as lease_db
from app.shutdown import STOP_WAIT, cancel_bounded

if TYPE_CHECKING:
    from app.bots.fleet.host import BotHost
    from app.bots.fleet.leases import LeaseBook
    from app.bots.fleet.starts import StartPacer
    from app.bots.fleet.view import FleetView
    from app.bots.fleet.worker import Heart

_log = logging.getLogger(__name__)

# Intervals between fallback rounds once the fleet is settled (30 s at the default LEASE_TTL).
# Every change that can unsettle it wakes a round at once (a worker joining, leaving or found
# dead, a lease freed or changing hands, a bot added, enabled or disabled); the fallback is there
# for what no event reports.
SETTLED_FALLBACK = 10


@dataclass(frozen=True, slots=True)
class Member:
    """A live, active worker as the balancer sees it."""

    id: str
    capacity: int | None = None


def compute_targets(members: Sequence[Member], bots: int) -> dict[str, int]:
    """How many bots each member should run. `members` are in the order every worker agrees on
    (oldest first): `bots // W` each, plus one for the `bots % W` oldest. A capacity caps a
    member's target and the rest is spread over the others the same way. The targets sum to
    `bots` unless the capacities cannot hold them all."""
    targets = {member.id: 0 for member in members}
    open_members = list(members)
    remaining = bots
    while open_members and remaining > 0:
        share, extra = divmod(remaining, len(open_members))
        wants = {m.id: share + (1 if i < extra else 0) for i, m in enumerate(open_members)}
        capped = [
            m for m in open_members if m.capacity is not None and m.capacity - targets[m.id] < wants[m.id]
        ]
        if not capped:
            for member in open_members:
                targets[member.id] += wants[member.id]
            break
        for member in capped:
            assert member.capacity is not None
            room = max(0, member.capacity - targets[member.id])
            targets[member.id] += room
            remaining -= room
            open_members.remove(member)
    return targets


@dataclass(frozen=True, slots=True)
class Plan:
    claim: tuple[int, ...] = ()  # free bots to claim, in order of preference
    release: tuple[int, ...] = ()  # held bots to hand over

    @property
    def empty(self) -> bool:
        return not self.claim and not self.release


def plan_round(
    *,
    me: str,
    members: Sequence[Member],
    targets: Mapping[str, int],
    held: Collection[int],
    counts: Mapping[str, int],
    free: Sequence[int],
    idle: Collection[int],
    stable: bool,
) -> Plan:
    """One worker's moves for this round.

    Below target: claim free bots, at most the deficit. Each member starts at its own offset in
    the sorted free list, so workers claiming at the same moment rarely race for the same bot.
    Above target: release the excess, but only when the membership has been stable for a round
    (hysteresis: a worker that blinks in and out moves nothing) and some other member is below
    its target (someone will take them); idle bots first, so fewer players move.
    """
    ids = [member.id for member in members]
    if me not in ids:
        return Plan()
    target = targets.get(me, 0)
    have = len(held)
    if have < target:
        candidates = sorted(free)
        if candidates:
            start = len(candidates) * ids.index(me) // len(ids)
            candidates = candidates[start:] + candidates[:start]
        return Plan(claim=tuple(candidates[: target - have]))
    if have > target and stable:
        short = any(counts.get(other, 0) < targets.get(other, 0) for other in ids if other != me)
        if not short:
            return Plan()
        excess = have - target
        # Idle bots first, then the most recently added (highest id): the long-held stay put.
        order = sorted(held, key=lambda client_id: (client_id not in idle, -client_id))
        return Plan(release=tuple(order[:excess]))
    return Plan()


class Balancer:
    """Runs rounds: housekeeping (reap the dead, free their leases, create missing leases,
    remove those of deleted bots), then this worker's claims or releases."""

    def __init__(
        self,
        *,
        host: BotHost,
        view: FleetView,
        book: LeaseBook,
        heart: Heart,
        pacer: StartPacer,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = host
        self._pacer = pacer
        self._view = view
        self._book = book
        self._heart = heart
        self._interval = interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._members: tuple[str, ...] = ()
        self._members_since = clock()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.settled = False  # the last round found the fleet settled (module docstring)

    @property
    def fallback_delay(self) -> float:
        """Seconds the next round waits for an event before it runs anyway."""
        return self._interval * (SETTLED_FALLBACK if self.settled else 1)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-balancer")

    async def stop(self) -> None:
        await cancel_bounded([self._task], STOP_WAIT, what="The balancer")
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.fallback_delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                _log.warning("Balancing round failed (%s); next round in %.1fs", exc, self._interval)
            except Exception:
                _log.exception("Balancing round failed unexpectedly; next round in %.1fs", self._interval)

    async def run_round(self) -> Plan:
        """One round, never two at once (an API call may run one beside the loop)."""
        async with self._lock:
            self.rounds += 1
            self.settled = False  # until this round proves otherwise (an error leaves it False)
            if not self._heart.is_current():
                return Plan()  # not provably ours: claim nothing, start nothing
            quiet = not await self._housekeeping()
            quiet = not await self._run_held() and quiet
            plan, balanced = self._plan()
            if plan.claim:
                await self._claim(plan.claim)
            if plan.release:
                await self._release(plan.release)
            self.settled = quiet and balanced and plan.empty
            return plan

    def members(self) -> list[Member]:
        return [Member(w.id, w.capacity) for w in self._view.active_workers()]

    def _plan(self) -> tuple[Plan, bool]:
        """This round's plan, and whether the fleet is balanced as this worker sees it: the
        membership stable, no bot free to claim, every member holding its target."""
        members = self.members()
        ids = tuple(m.id for m in members)
        now = self._clock()
        if ids != self._members:
            self._members, self._members_since = ids, now
        stable = now - self._members_since >= self._interval
        wanted = set(self._host.wanted())
        me = self._heart.worker_id
        targets = compute_targets(members, len(wanted))
        counts = self._view.lease_counts()
        counts[me] = len(self._book.held)
        free = [
            client_id
            for client_id in wanted
            if (lease := self._view.lease(client_id)) is not None
            and lease.owner is None
            and not self._book.holds(client_id)
        ]
        plan = plan_round(
            me=me,
            members=members,
            targets=targets,
            held=list(self._book.held),
            counts=counts,
            free=free,
            idle=set(self._host.idle()),
            stable=stable,
        )
        balanced = stable and not free and all(counts.get(m.id, 0) == targets[m.id] for m in members)
        return plan, balanced

    async def _housekeeping(self) -> bool:
        """True: it found something to do (a worker reaped or gone, leases freed, created,
        removed or adopted)."""
        view = self._view
        found = False
        # Workers observed dead: delete each only if its counter is still the one that stood
        # still, then free its leases for everyone.
        for worker_id, counter in view.dead_workers().items():
            if worker_id == self._heart.worker_id:
                continue
            found = True
            if await lease_db.reap_worker(worker_id, heartbeat=counter):
                _log.warning("Worker %s stopped heartbeating for %.0fs: reaped", worker_id, view.ttl)
            elif await lease_db.worker_exists(worker_id):
                # Its heartbeat landed after our read: it is alive, and its leases are its own.
                # (Freeing them now would let another worker start bots it still runs.)
                _log.info("Worker %s heartbeated again before it could be reaped", worker_id)
                continue
            view.forget_worker(worker_id)
            freed = await lease_db.release_orphans(worker_id)
            # The mirror learns it now, not from the stream's echo of every freed lease: this
            # round's plan claims them all at once (a takeover's bots start a round sooner).
            view.mark_freed(worker_id)
            if freed:
                _log.info("Freed %d bot(s) of worker %s", freed, worker_id)
                view.needs_reload()
        # Leases naming a worker nobody has registered: freed once the database confirms it is
        # gone (the mirror may not have seen a newcomer yet; ids are never reused).
        for owner in view.unknown_owners() - {self._heart.worker_id}:
            found = True
            if not await lease_db.worker_exists(owner):
                freed = await lease_db.release_orphans(owner)
                view.mark_freed(owner)
                _log.info("Freed %d bot(s) of worker %s, which is gone", freed, owner)
                view.needs_reload()
        found = await self._adopt_strays() or found
        wanted, known = set(self._host.wanted()), set(self._host.known())
        missing = [client_id for client_id in sorted(wanted) if view.lease(client_id) is None]
        if missing:
            found = True
            await lease_db.ensure_leases(missing)
            await view.reload_leases()
        for client_id, lease in view.leases_snapshot().items():
            if client_id not in known and lease.owner is None:
                found = True
                await lease_db.delete_lease(client_id, worker_id=None)  # its bot was deleted
        return found

    async def _adopt_strays(self) -> bool:
        """Leases that name this worker but are not in its book: a claim whose answer was lost
        (the update landed, the reply did not). The mirror only hints at them (it may still show
        a lease this worker has just released); the database decides."""
        me = self._heart.worker_id
        hinted = [
            client_id
            for client_id, lease in self._view.leases_snapshot().items()
            if lease.owner == me and not self._book.holds(client_id)
        ]
        if hinted:
            for lease in await lease_db.leases_owned_by(me, hinted):
                if not self._book.holds(lease.id):
                    _log.info(
                        "Bot %d: its lease names this worker (epoch %d); taking it up", lease.id, lease.epoch
                    )
                    self._book.adopt(lease.id, epoch=lease.epoch, restarts=lease.restarts)
        return bool(hinted)

    async def _run_held(self) -> bool:
        """Every lease this worker holds has a running bot (after a suspension, a restart), each
        started through the pacer. True: some were not running (started now, or still starting)."""
        running = set(self._host.running())
        found = False
        for client_id, held in list(self._book.held.items()):
            if client_id not in running:
                found = True
                if not self._pacer.pending(client_id):
                    await self._pacer.begin(client_id, held.epoch)
        return found

    async def _claim(self, client_ids: Sequence[int]) -> None:
        won = await self._book.claim(client_ids)
        if not won:
            return
        if not self._heart.is_current():
            # The claim landed, but this worker cannot prove it is alive any more: it runs
            # nothing until its heartbeat is current again (`_run_held` then starts them).
            return
        _log.info("Claimed %d bot(s)", len(won))
        for client_id, held in won.items():
            await self._pacer.begin(client_id, held.epoch)

    async def _release(self, client_ids: Sequence[int]) -> None:
        _log.info("Handing over %d bot(s) to rebalance the fleet", len(client_ids))
        self._pacer.discard(client_ids)
        released = await self._book.hand_over(self._host, client_ids, write_timeout=self._interval * 2)
        _log.info("Handed over %d of %d bot(s)", len(released), len(client_ids))
