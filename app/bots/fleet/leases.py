"""The leases this worker holds: the only bots it may run.

Claims and releases are the compare-and-set updates of `app.db.leases`; this book remembers what
they won, with the epoch each bot's fenced writes carry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

from app.db import leases as lease_db
from app.db.leases import LeasesCollection

if TYPE_CHECKING:
    from app.bots.fleet.host import BotHost

_log = logging.getLogger(__name__)

# A hand-over releases the bots stopped so far this often: one write per batch, and the other
# workers claim the first bots while the last are still stopping.
RELEASE_BATCH_EVERY = 0.25
# Bots stopping at the same time in a hand-over. Unbounded, a worker handing over 2,000 bots
# starved its own event loop (and its heartbeat) with 2,000 closes at once; the first bots are
# also released sooner when they do not all wait on each other.
HAND_OVER_CONCURRENCY = 64
# Hand-overs already under way at the deadline get this long to finish; after that the caller
# goes on (their bots keep their leases and are taken over after LEASE_TTL, as after a crash).
HAND_OVER_OVERRUN = 5.0


@dataclass(slots=True)
class Held:
    epoch: int
    restarts: int  # the lease's restart counter when last acted on


class LeaseBook:
    def __init__(self, worker_id: Callable[[], str]) -> None:
        self._worker_id = worker_id  # changes when the worker registers again after being reaped
        self.held: dict[int, Held] = {}
        # Bots being handed over: stopped, about to be released; nothing may start them again.
        self.releasing: set[int] = set()
        # A hand-over's release found the database unreachable (the drain stops being graceful).
        self.unreachable = False

    def holds(self, client_id: int) -> bool:
        return client_id in self.held

    def may_start(self, client_id: int, epoch: int) -> bool:
        """The lease is held at exactly that epoch and is not being handed over."""
        held = self.held.get(client_id)
        return held is not None and held.epoch == epoch and client_id not in self.releasing

    def epoch_of(self, client_id: int) -> int | None:
        held = self.held.get(client_id)
        return None if held is None else held.epoch

    async def claim(self, client_ids: Sequence[int]) -> dict[int, Held]:
        """Claim free leases; returns those won (a race lost is simply not in the result)."""
        wanted = [client_id for client_id in client_ids if client_id not in self.held]
        won = await lease_db.claim_free(self._worker_id(), wanted)
        claimed = {client_id: Held(lease.epoch, lease.restarts) for client_id, lease in won.items()}
        self.held.update(claimed)
        return claimed

    async def release(self, client_id: int) -> bool:
        """Give the lease back (its bot is stopped). Forgotten here whatever the database says:
        a CAS that finds another owner or epoch means it was not ours any more anyway."""
        held = self.held.pop(client_id, None)
        if held is None:
            return False
        released = await lease_db.release(client_id, worker_id=self._worker_id(), epoch=held.epoch)
        if not released:
            _log.warning("Bot %d: its lease (epoch %d) had already changed hands", client_id, held.epoch)
        return released

    async def delete(self, client_id: int) -> bool:
        """The bot was deleted: remove its lease (ours, with our epoch; or a free one)."""
        held = self.held.pop(client_id, None)
        if held is None:
            return await lease_db.delete_lease(client_id, worker_id=None)
        return await lease_db.delete_lease(client_id, worker_id=self._worker_id(), epoch=held.epoch)

    async def hand_over(
        self,
        host: BotHost,
        client_ids: Sequence[int],
        *,
        write_timeout: float,
        collection: LeasesCollection | None = None,
        deadline: float | None = None,
    ) -> set[int]:
        """Stop the bots (HAND_OVER_CONCURRENCY at a time) and release their leases in batches
        as they stop. Returns the bots released. A bot whose stop could not be shown complete
        keeps its lease; so does a batch whose release failed (its bots are stopped: this worker
        may run them again, or the others take them once it is gone). `deadline` (monotonic):
        no bot's hand-over starts after it; those bots are left running, lease held, for the
        caller to drop; and HAND_OVER_OVERRUN after it, this returns even if some stops are
        still under way (they finish on their own; their leases are not released). Once a
        release finds the database unreachable (`unreachable`), no further graceful hand-over
        starts either (its saves could not be written): those bots are left to the caller too."""
        stopped: list[int] = []
        released: set[int] = set()
        gate = asyncio.Semaphore(HAND_OVER_CONCURRENCY)
        self.releasing.update(client_ids)

        async def stop(client_id: int) -> None:
            async with gate:
                if self.unreachable or (deadline is not None and time.monotonic() >= deadline):
                    return
                if await host.hand_over(client_id):
                    stopped.append(client_id)

        async def flush() -> None:
            batch = [client_id for client_id in stopped if client_id in self.held]
            stopped.clear()
            if not batch:
                return
            # Once per batch, not inside each bot's slot: there, a wait for the IDENTIFY log (up
            # to its bound while the database is slow) held the slot, and 1,000 bots paid it in
            # 16 rounds one after the other.
            await host.identifies_written(batch)
            try:
                with pymongo.timeout(write_timeout):
                    await lease_db.release_many(batch, worker_id=self._worker_id(), collection=collection)
            except PyMongoError as exc:
                _log.warning("%d stopped bot(s) not released (%s)", len(batch), exc)
                if isinstance(exc, ConnectionFailure):  # unreachable, or too slow for one write
                    self.unreachable = True
                return
            for client_id in batch:
                self.held.pop(client_id, None)
            released.update(batch)

        try:
            stops = asyncio.ensure_future(asyncio.gather(*(stop(client_id) for client_id in client_ids)))
            while not stops.done():
                await asyncio.wait({stops}, timeout=RELEASE_BATCH_EVERY)
                if not self.unreachable:
                    await flush()
                if deadline is not None and time.monotonic() >= deadline + HAND_OVER_OVERRUN:
                    _log.warning("Hand-overs still under way %.0fs after the deadline; leaving them",
                                 HAND_OVER_OVERRUN)  # fmt: skip
                    break
            else:
                await stops
            if not self.unreachable:
                await flush()
        finally:
            self.releasing.difference_update(client_ids)
        return released

    def adopt(self, client_id: int, *, epoch: int, restarts: int) -> None:
        """A lease the database says this worker holds (a claim whose answer was lost)."""
        self.held[client_id] = Held(epoch, restarts)

    def drop(self, client_id: int) -> Held | None:
        """Forget a lease that is lost (another owner or a newer epoch was seen)."""
        return self.held.pop(client_id, None)

    def clear(self) -> None:
        self.held.clear()
