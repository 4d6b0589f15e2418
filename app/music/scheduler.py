"""`MusicScheduler`: the periodic work of every bot's music on one worker, done by one set of loops.

Each bot used to run its own idle loop and snapshot loop (and each Lavalink node its own
watchdog): a worker of 1,000 idle bots woke hundreds of times a second and wrote to the database
for nothing. Here one worker has one loop per kind of work (discord.py's `tasks.loop`), and each
loop visits only the bots that have something to look at: a bot enters the active set when it
joins voice and leaves it once it has no player and nothing saved (see `SnapshotKeeper.has_work`).
An idle fleet is two timers and no database traffic.

- **Idle players**: every `min(5 s, MUSIC_IDLE_TIMEOUT / 4)`, each active bot checks its players
  (`MusicService.check_idle`): the same rule and timing as before.
- **Snapshots**: every `SNAPSHOT_INTERVAL`, each active bot's keeper says what changed
  (`SnapshotKeeper.changes`), and all of it goes to the database in one bulk write.
- **Lavalink node health** needs no sweep: a node's connection is watched by its websocket
  reader, whose end starts the reconnect (see `app.music.nodes`).

The fleet (`app.bots`) creates the scheduler and hands it to every `MusicService`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from discord.ext import tasks
from pymongo.errors import PyMongoError

from app.music.snapshots import write_snapshots
from app.shutdown import STOP_WAIT, cancel_bounded

if TYPE_CHECKING:
    from app.music.service import MusicService

_log = logging.getLogger(__name__)


def idle_check_interval(idle_timeout: float) -> float:
    """How often players are checked for idleness: a quarter of the timeout, at most 5 s."""
    return min(5.0, max(0.05, idle_timeout / 4)) if idle_timeout else 5.0


class MusicScheduler:
    """One per worker. `start`/`stop` by the fleet; `add`/`remove` by each bot's music."""

    def __init__(self, *, idle_timeout: float, snapshot_interval: float) -> None:
        self._idle_timeout = idle_timeout
        self._services: set[MusicService] = set()  # started and not closed
        self._active: set[MusicService] = set()  # of those, the ones with players or snapshots
        self._idle_loop = tasks.loop(seconds=idle_check_interval(idle_timeout), name="music-idle")(
            self._idle_sweep
        )
        self._snapshot_loop = tasks.loop(seconds=snapshot_interval, name="music-snapshots")(
            self._snapshot_sweep
        )
        self.snapshot_sweeps = 0  # sweeps done, so tests can wait for "several intervals"
        self.idle_sweeps = 0

    def start(self) -> None:
        if self._idle_timeout:
            self._idle_loop.start()
        self._snapshot_loop.start()

    async def stop(self) -> None:
        tasks = [loop.get_task() for loop in (self._idle_loop, self._snapshot_loop)]
        for loop in (self._idle_loop, self._snapshot_loop):
            loop.cancel()
        await cancel_bounded(tasks, STOP_WAIT, what="The music scheduler")

    # -- the bots ----------------------------------------------------------------------------

    def add(self, service: MusicService) -> None:
        """A bot's music started: it is swept once it has work (`wake`)."""
        self._services.add(service)

    def remove(self, service: MusicService) -> None:
        """A bot's music is closing: its own shutdown saves its players; no sweep touches it again."""
        self._services.discard(service)
        self._active.discard(service)

    def wake(self, service: MusicService) -> None:
        """The bot has work for the sweeps (a player joined voice)."""
        if service in self._services:
            self._active.add(service)

    def active_count(self) -> int:
        return len(self._active)

    # -- the sweeps --------------------------------------------------------------------------

    async def _idle_sweep(self) -> None:
        now = time.monotonic()
        for service in list(self._active):
            if service in self._active:  # not removed while an earlier one was leaving
                await service.check_idle(now)
        self.idle_sweeps += 1

    async def _snapshot_sweep(self) -> None:
        try:
            await self.save_changes()
        except PyMongoError as exc:
            _log.warning("Player snapshots not saved (%s); the next sweep writes them", exc)
        except Exception:  # never the end of the loop: the next sweep tries again
            _log.exception("Saving player snapshots failed")
        self.snapshot_sweeps += 1

    async def save_changes(self) -> int:
        """Write every active bot's snapshot changes in one bulk write; returns how many writes."""
        now = asyncio.get_running_loop().time()
        writes = []
        for service in list(self._active):
            if not service.snapshots.has_work():
                self._active.discard(service)  # no player, nothing stored: nothing to look at
                continue
            writes.extend(service.snapshots.changes(now))
        await write_snapshots(writes)
        return len(writes)
