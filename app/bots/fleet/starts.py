"""Bot starts at a pace the database can follow.

A bot that starts does database work of its own for a while (its identify ledger, its guild
records, its saved players, its published status). A worker that started 1,000 bots at once
(a fleet of one booting, or every bot taken back after a database outage) queued so much of that
work that its own heartbeat could not land before the renew deadline: the worker stopped every
bot, took them back once a heartbeat landed, and the restart overloaded the database again.

So the leases are claimed at once (a lease is one cheap write, and holding it is what keeps the
others from claiming), but the bots are started `START_CONCURRENCY` at a time: a start holds its
slot through its costly part (start facts, login, gateway handshake, IDENTIFY and its log) until
its gateway session is open (READY received), or it failed or stopped, or
`START_SETTLE_SECONDS` have passed, so the database work and the sockets of starting bots in
flight at any moment are bounded whatever the fleet's size. The slot is not held through
discord.py's wait for guilds after READY (`GUILD_READY_TIMEOUT`, 2 s by default): a timer, no
work of ours, which held every slot for 2 s of ~2.3 and limited a worker to ~14 starts/s (a
takeover of 500 bots took 42 s). Whether a bot may still run is decided by the host at the last
moment of its start (`FleetCoordinator.may_run`), so a start queued here never outlives its lease.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.shutdown import STOP_WAIT, cancel_bounded

if TYPE_CHECKING:
    from app.bots.fleet.host import BotHost

_log = logging.getLogger(__name__)

# Bots starting at once on one worker (logins are further limited by BOT_LOGIN_CONCURRENCY). Each
# slot is held only until READY: a start's own database work is batched (start facts, IDENTIFY
# log), so twice the slots is not twice the load; a takeover of 500 bots started in ~10 s after
# the death was proven, against ~12.6 s with 32 (the workers benchmark, same session).
START_CONCURRENCY = 64
# A start not done by then (an IDENTIFY spaced out, a slow gateway, retries) gives its slot up.
START_SETTLE_SECONDS = 20.0


class StartPacer:
    def __init__(
        self,
        *,
        host: BotHost,
        still_held: Callable[[int, int], bool],
        refused: Callable[[int], Awaitable[None]],
        concurrency: int = START_CONCURRENCY,
        settle_seconds: float = START_SETTLE_SECONDS,
    ) -> None:
        """`still_held(bot, epoch)`: the lease is still this worker's at that epoch (else the start
        is skipped). `refused(bot)`: the host said the bot should not run any more (disabled
        meanwhile): its lease goes back."""
        self._host = host
        self._still_held = still_held
        self._refused = refused
        self._settle_seconds = settle_seconds
        self._gate = asyncio.Semaphore(concurrency)
        self._queue: collections.OrderedDict[int, int] = collections.OrderedDict()  # bot -> epoch
        self._starting: dict[int, asyncio.Event] = {}  # bot -> set when its state changes
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.started = 0
        self.gave_up = 0  # starts whose slot passed on at START_SETTLE_SECONDS, not done

    def pending(self, client_id: int) -> bool:
        """Queued, or starting and not done yet (see `BotHost.start_done`)."""
        return client_id in self._queue or client_id in self._starting

    def queued(self) -> int:
        return len(self._queue)

    def submit(self, client_id: int, epoch: int) -> None:
        if client_id in self._starting:
            return
        self._queue[client_id] = epoch  # a newer epoch replaces a queued older one
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="fleet-start-pacer")

    def discard(self, client_ids: Iterable[int]) -> None:
        """Forget queued starts (hand-over, lost lease, renew deadline passed)."""
        for client_id in client_ids:
            self._queue.pop(client_id, None)

    def clear(self) -> None:
        self._queue.clear()

    def status_changed(self, client_id: int) -> None:
        event = self._starting.get(client_id)
        if event is not None:
            event.set()

    async def stop(self) -> None:
        self._queue.clear()
        tasks = [task for task in (self._task, *self._running) if task is not None]
        await cancel_bounded(tasks, STOP_WAIT, what="The paced starts")
        self._task = None

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._gate.acquire()
            if not self._queue:
                self._gate.release()
                continue
            client_id, epoch = self._queue.popitem(last=False)
            self._starting[client_id] = asyncio.Event()
            task = asyncio.create_task(self._start(client_id, epoch), name=f"fleet-start-{client_id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def begin(self, client_id: int, epoch: int) -> None:
        """Start the bot now if a slot is free and nothing waits before it (its runner exists
        when this returns: an API call that enables a bot answers "started"); else queue it."""
        if self._queue or self._gate.locked() or client_id in self._starting:
            self.submit(client_id, epoch)
            return
        await self._gate.acquire()
        self._starting[client_id] = asyncio.Event()
        try:
            launched = await self._launch(client_id, epoch)
        except BaseException:
            self._done(client_id)
            raise
        if not launched:
            self._done(client_id)
            return
        task = asyncio.create_task(self._settle(client_id), name=f"fleet-start-{client_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _start(self, client_id: int, epoch: int) -> None:
        try:
            if await self._launch(client_id, epoch):
                await self._wait_done(client_id)
        finally:
            self._done(client_id)

    async def _settle(self, client_id: int) -> None:
        try:
            await self._wait_done(client_id)
        finally:
            self._done(client_id)

    def _done(self, client_id: int) -> None:
        self._starting.pop(client_id, None)
        self._gate.release()

    async def _launch(self, client_id: int, epoch: int) -> bool:
        """Ask the host to start the bot. True: it was started (its slot waits for the start to be done)."""
        try:
            if not self._still_held(client_id, epoch):
                return False
            if not await self._host.run_bot(client_id, epoch):
                await self._refused(client_id)
                return False
        except asyncio.CancelledError:
            raise
        except PyMongoError as exc:
            _log.warning("Bot %d: its lease was not given back (%s); the balancer retries", client_id, exc)
            return False
        except Exception:
            _log.exception("Bot %d: starting it failed unexpectedly", client_id)
            return False
        self.started += 1
        return True

    async def _wait_done(self, client_id: int) -> None:
        changed = self._starting.get(client_id)
        if changed is None:
            return
        try:
            async with asyncio.timeout(self._settle_seconds):
                while True:
                    changed.clear()  # before the check: a change after it wakes the wait
                    if self._host.start_done(client_id):
                        break
                    await changed.wait()
        except TimeoutError:
            self.gave_up += 1
            _log.debug("Bot %d has not opened its session after %.0fs; starting the next", client_id,
                       self._settle_seconds)  # fmt: skip
