"""Owners publish their bots' status into the lease documents, so every worker's `/bots` and
`/health` describe the whole fleet from memory.

Written only when something a reader would see changes (state, error, guild or user count, the
"stuck starting" flag). Latency moves with every gateway heartbeat: it is published at most once a
minute, and only once it has moved by `LATENCY_MOVE_MS` and `LATENCY_MOVE_RATIO` from the value
published (a bot that lags shows; the jitter of a fleet of healthy bots writes nothing). A latency
that appears or goes is not held back: a bot turning ready publishes its first latency with its
state (one write), not a minute later in a bulk write of every bot that started. One bulk write per
batch, each update fenced by (owner, epoch).

What is compared costs what changes, not the fleet's size: a bot's state change, error or guild
counts tell the publisher (`changed`); between those, the `SWEEP_EVERY` pass compares only the bots
whose published state is not "ready" (their "stuck" flag follows the clock), and every
`FULL_SWEEP_EVERY` one pass compares every bot (latency, IDENTIFYs leaving the 24-hour window).
So an idle fleet of 1,000 ready bots costs one comparison per bot a minute and no write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from app.bots.fleet.host import BotHost
from app.bots.fleet.leases import LeaseBook
from app.db import leases as lease_db
from app.db.models import LeaseStatus
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

LATENCY_EVERY = 60.0  # seconds between two publications of a bot's latency alone
LATENCY_MOVE_MS = 50.0  # ... once it moved by at least this much from the published value
LATENCY_MOVE_RATIO = 0.5  # ... and by at least this share of it
SWEEP_EVERY = 10.0  # bots not published "ready" are compared at least this often ("stuck")
FULL_SWEEP_EVERY = 60.0  # every bot is compared at least this often (latency, IDENTIFYs aging)
READY = "ready"  # LeaseStatus.state of a ready bot (BotState.READY's value)
DEBOUNCE = 0.25  # changes arriving together go out in one bulk write


@dataclass(slots=True)
class _Published:
    epoch: int
    status: LeaseStatus
    latency_at: float


class StatusPublisher:
    def __init__(
        self,
        *,
        host: BotHost,
        book: LeaseBook,
        worker_id: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = host
        self._book = book
        self._worker_id = worker_id
        self._clock = clock
        self._published: dict[int, _Published] = {}
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sweep_at = self._full_sweep_at = clock()  # the last passes that compared by the clock
        self.compared = 0  # statuses compared so far (tests check what a pass looks at)

    def changed(self, client_id: int) -> None:
        self._dirty.add(client_id)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-status")

    async def stop(self) -> None:
        await cancel_bounded([self._task], 1.0, what="The status publisher")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWEEP_EVERY):
                    await self._wake.wait()
            await asyncio.sleep(DEBOUNCE)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                await self.publish(self.pass_targets(dirty))
            except PyMongoError as exc:
                self._dirty |= dirty  # next time
                _log.debug("Publishing bot statuses failed (%s)", exc)

    def pass_targets(self, dirty: set[int]) -> set[int] | None:
        """What one pass compares: the bots that reported a change, plus, by the clock, the bots not
        published as ready under their current lease (every `SWEEP_EVERY`) or every bot (every
        `FULL_SWEEP_EVERY`: None)."""
        now = self._clock()
        if now - self._full_sweep_at >= FULL_SWEEP_EVERY:
            self._sweep_at = self._full_sweep_at = now
            return None
        if now - self._sweep_at < SWEEP_EVERY:
            return dirty
        self._sweep_at = now
        targets = set(dirty)
        for client_id in self._book.held:
            last = self._published.get(client_id)
            if last is None or last.status.state != READY or last.epoch != self._book.epoch_of(client_id):
                targets.add(client_id)
        return targets

    def due(self, client_ids: set[int] | None = None) -> list[tuple[int, int, LeaseStatus]]:
        """The statuses that differ from what was last published (None: compare every bot)."""
        now = self._clock()
        updates: list[tuple[int, int, LeaseStatus]] = []
        for client_id in list(self._book.held) if client_ids is None else client_ids:
            epoch = self._book.epoch_of(client_id)
            status = self._host.lease_status(client_id)
            self.compared += 1
            if epoch is None or status is None:
                continue
            last = self._published.get(client_id)
            if last is not None and last.epoch == epoch:
                published = last.status.latency_ms
                # A latency that appears or goes (the bot turned ready, or stopped being) is news at
                # once, written with the state that explains it; one that moves waits its minute.
                latency_due = (
                    published is None or status.latency_ms is None or now - last.latency_at >= LATENCY_EVERY
                )
                if not (latency_due and latency_moved(published, status.latency_ms)):
                    status = status.model_copy(update={"latency_ms": published})
                if status == last.status:
                    continue
            updates.append((client_id, epoch, status))
        return updates

    async def publish(self, client_ids: set[int] | None = None) -> int:
        updates = self.due(client_ids)
        if not updates:
            return 0
        written, fenced = await lease_db.publish_statuses(self._worker_id(), updates)
        now = self._clock()
        for client_id, epoch, status in updates:
            last = self._published.get(client_id)
            latency_at = (
                last.latency_at
                if last is not None and last.epoch == epoch and last.status.latency_ms == status.latency_ms
                else now
            )
            self._published[client_id] = _Published(epoch, status, latency_at)
        for client_id in set(self._published) - set(self._book.held):
            del self._published[client_id]
        if fenced:
            _log.info("%d status update(s) fenced: those leases changed hands", fenced)
        return written


def latency_moved(published: float | None, current: float | None) -> bool:
    """Whether a bot's latency is news compared with the value published: appeared, gone, or moved
    by both `LATENCY_MOVE_MS` and `LATENCY_MOVE_RATIO` of the published value."""
    if published is None or current is None:
        return published != current
    moved = abs(current - published)
    return moved >= LATENCY_MOVE_MS and moved >= LATENCY_MOVE_RATIO * published
