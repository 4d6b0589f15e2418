"""Guild records: `ServerMusicBot` and a bot's counts follow its live guild list."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from pymongo.errors import PyMongoError

from app.bots.backoff import Backoff
from app.db import queries
from app.db.models import MusicBot

if TYPE_CHECKING:
    from app.bots.client import MusicBotClient

_log = logging.getLogger(__name__)

# Guild syncs writing at once, over a worker's bots. A fresh fleet's first start syncs every bot
# together (two writes each): unbounded, 1,000 bots took every connection of the pool (100) for
# seconds, so the IDENTIFY log's writes and the database monitor's ping timed out waiting for one,
# and the worker reported its database unreachable while it was only busy. The rest of the pool
# stays free for everything else; the records are written about as fast (the database, not the
# number of writes in flight, sets the pace).
GUILD_WRITES_AT_ONCE = 16


class GuildSync:
    """One loop per bot, woken by READY/RESUMED/join/remove/available: events that arrive
    during a pass coalesce into the next one. Supervised: a database outage, or anything
    unexpected, is logged and retried with backoff; the loop itself never ends."""

    def __init__(
        self,
        *,
        client_id: int,
        record: Callable[[], MusicBot],
        ready_client: Callable[[], MusicBotClient | None],
        epoch: int | None = None,
        on_change: Callable[[], None] | None = None,
        recorded: frozenset[int] | None = None,
        writers: asyncio.Semaphore | None = None,
    ) -> None:
        self.client_id = client_id
        # Shared by the worker's bots (GUILD_WRITES_AT_ONCE); None: unbounded (a bot alone).
        self._writers = writers
        self._epoch = epoch  # the lease epoch: records written by a newer owner are not touched
        self._on_change = on_change  # the counts changed (the owner publishes them)
        self._record = record  # the runner's current record (hot reload may replace it)
        self._ready_client = ready_client  # the bot's client while it is ready, else None
        self._wanted = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.passes = 0  # passes that saw the bot ready (a test waits for the first)
        # The bot's active guild records as read for the fleet's start: the first pass needs no
        # read of its own. Later passes read (other writers may have changed the records).
        self._recorded = recorded

    def start(self) -> None:
        self.task = asyncio.create_task(self._guild_sync_loop(), name=f"bot-{self.client_id}-guilds")

    def wake(self) -> None:
        self._wanted.set()

    async def _guild_sync_loop(self) -> None:  # the name the benchmarks' profiles look for
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                synced = await self._sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next_delay()
                if isinstance(exc, PyMongoError):
                    _log.warning("Bot %d: guild records not saved (%s); retrying in %.1fs",
                                 self.client_id, exc, delay)  # fmt: skip
                else:
                    _log.exception("Bot %d: guild sync failed unexpectedly; retrying in %.1fs",
                                   self.client_id, delay)  # fmt: skip
                await asyncio.sleep(delay)
                self._wanted.set()
                continue
            backoff.reset()
            self.passes += synced

    async def _sync(self) -> bool:
        """One pass; False: the bot is not ready (nothing to compare with)."""
        client = self._ready_client()
        if client is None:
            return False
        # A guild still unavailable after READY (a Discord outage) has no data yet (`me` is None):
        # it keeps its record until its GUILD_CREATE arrives and wakes this loop again.
        unavailable = [guild.id for guild in client.guilds if guild.unavailable or guild.me is None]
        available = [guild for guild in client.guilds if guild.id not in unavailable]
        guild_ids = [guild.id for guild in available]
        failed = {guild.id: reason for guild in available if (reason := _cannot_play_in(guild))}
        if unavailable:
            _log.info("Bot %d: %d guild(s) unavailable; their records wait until they arrive",
                      self.client_id, len(unavailable))  # fmt: skip
        record = self._record()
        assert record.id is not None
        guild_count = len(guild_ids) + len(unavailable)
        counts = (guild_count, client.user_count)
        recorded, self._recorded = self._recorded, None
        async with self._writers or contextlib.nullcontext():
            activated, removed = await queries.reconcile_bot_guilds(
                record.id, guild_ids, failed=failed, unavailable=unavailable, epoch=self._epoch,
                recorded=recorded,
            )  # fmt: skip
            changed = (record.guild_count, record.user_count) != counts
            if changed:
                # Written only when they changed: a restart of an unchanged fleet writes nothing here.
                await queries.update_bot_guild_count(
                    self.client_id, guild_count=guild_count, user_count=client.user_count
                )
                record.guild_count, record.user_count = counts
        if changed and self._on_change is not None:
            self._on_change()  # the owner publishes the new counts
        if activated or removed:
            _log.info("Bot %d guilds: %d activated, %d removed", self.client_id, activated, removed)
        return True


def _cannot_play_in(guild: discord.Guild) -> str | None:
    """Why the bot cannot play music in this guild at all (server-wide permissions), or None."""
    permissions = guild.me.guild_permissions
    missing = [
        name for name, ok in (("Connect", permissions.connect), ("Speak", permissions.speak)) if not ok
    ]
    return f"missing permission: {', '.join(missing)}" if missing else None
