"""What every bot's start would otherwise read for itself, read once for the whole fleet.

A fleet of N bots starting used to make N reads of guild records, N reads of saved players and N
reads of IDENTIFY logs, one per bot. `FleetStartFacts` reads them for every bot in four queries
(with which bots hold voice assignments, whose rows an older owner may have left);
each runner takes its own share once (a bot restarted later reads for itself: the
facts are only true at its start). In a fleet of workers, bots start as their leases arrive:
`StartFactsLoader` reads for every bot the worker holds and has not started yet, in one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from beanie import PydanticObjectId
from pymongo.errors import PyMongoError

from app.db import queries
from app.db import routing as routing_db
from app.db.models import MusicBot

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartFacts:
    """One bot's share: the guilds it is recorded active in, whether it has saved players, its
    IDENTIFYs of the last 24 h, and whether it holds voice assignments (an older owner's rows to
    clean up)."""

    active_guilds: frozenset[int]
    has_saved_players: bool
    identify_log: list[datetime]
    has_voice_assignments: bool = True


class FleetStartFacts:
    def __init__(
        self,
        guilds: dict[PydanticObjectId, set[int]],
        with_saved_players: set[int],
        identify_logs: dict[int, list[datetime]],
        with_voice: set[int],
    ) -> None:
        self._guilds = guilds
        self._with_saved_players = with_saved_players
        self._identify_logs = identify_logs
        self._with_voice = with_voice

    @classmethod
    async def read(cls, bots: Sequence[MusicBot]) -> FleetStartFacts | None:
        """Four queries for the whole fleet; None when the database fails (each bot reads its own)."""
        try:
            guilds = await queries.active_guild_ids_of_bots([bot.id for bot in bots if bot.id is not None])
            saved = await queries.bots_with_player_snapshots([bot.client_id for bot in bots])
            identify_logs = await queries.identify_logs([bot.client_id for bot in bots])
            with_voice = await routing_db.bots_with_voice([bot.client_id for bot in bots])
        except PyMongoError as exc:
            _log.warning("Could not read the fleet's guild records, saved players and IDENTIFY logs at "
                         "once (%s); each bot reads its own", exc)  # fmt: skip
            return None
        return cls(guilds, saved, identify_logs, with_voice)

    def take(self, bot: MusicBot) -> StartFacts | None:
        """The bot's share, once (None: not read at the fleet's start, or already taken)."""
        guilds = self._guilds.pop(bot.id, None) if bot.id is not None else None
        if guilds is None:
            return None
        return StartFacts(
            frozenset(guilds),
            bot.client_id in self._with_saved_players,
            self._identify_logs.get(bot.client_id, []),
            bot.client_id in self._with_voice,
        )


# Bots whose facts one read covers at most (a worker taking a thousand bots reads in a few batches).
_BATCH = 1000


class StartFactsLoader:
    """Start facts read on demand, in batches, for a worker whose bots start one by one as their
    leases arrive (a paced start of 32 at a time, takeovers later on).

    Asked for one bot, it reads the facts of that bot and of every other bot this worker holds a
    lease on and has not started yet (`awaiting`: bot -> lease epoch) in one `FleetStartFacts`
    read, and keeps them by (bot, epoch) until each bot starts. The read happens after the leases
    were taken, so the previous owner of each bot had stopped it by then (a hand-over waits for
    its IDENTIFY log and saves its players before it releases): what was read stays true while
    this worker holds the lease at that epoch, and nobody else runs the bot meanwhile. A bot
    started again later (a restart, another epoch) finds nothing kept and reads afresh."""

    def __init__(
        self, awaiting: Callable[[], Mapping[int, int]], record: Callable[[int], MusicBot | None]
    ) -> None:
        self._awaiting = awaiting
        self._record = record
        self._kept: dict[tuple[int, int], StartFacts] = {}
        self._reading: dict[tuple[int, int], asyncio.Future[None]] = {}
        self.reads = 0  # batched reads done (tests count them)

    async def take(self, bot: MusicBot, epoch: int) -> StartFacts | None:
        """The bot's facts for its start under `epoch` (None: the read failed; it reads its own)."""
        key = (bot.client_id, epoch)
        reading = self._reading.get(key)
        if reading is not None:
            await asyncio.shield(reading)
        if key not in self._kept:
            await self._read(bot, epoch)
        return self._kept.pop(key, None)

    async def _read(self, bot: MusicBot, epoch: int) -> None:
        awaiting = dict(self._awaiting())
        # What was kept for bots no longer waiting under that epoch (lost, restarted) goes.
        self._kept = {key: facts for key, facts in self._kept.items() if awaiting.get(key[0]) == key[1]}
        batch: dict[int, tuple[MusicBot, int]] = {bot.client_id: (bot, epoch)}
        for client_id, held_epoch in awaiting.items():
            if len(batch) >= _BATCH:
                break
            key = (client_id, held_epoch)
            if client_id in batch or key in self._kept or key in self._reading:
                continue
            record = self._record(client_id)
            if record is not None and record.enabled:
                batch[client_id] = (record, held_epoch)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = [(client_id, held_epoch) for client_id, (_, held_epoch) in batch.items()]
        for key in keys:
            self._reading[key] = done
        try:
            facts = await FleetStartFacts.read([record for record, _ in batch.values()])
            self.reads += 1
        finally:
            for key in keys:
                if self._reading.get(key) is done:
                    del self._reading[key]
            done.set_result(None)
        if facts is None:
            return
        for client_id, (record, held_epoch) in batch.items():
            share = facts.take(record)
            if share is not None:
                self._kept[(client_id, held_epoch)] = share
