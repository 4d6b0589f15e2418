"""What every bot's start would otherwise read for itself, read once for the whole fleet.

A fleet of N bots starting used to make N reads of guild records, N reads of saved players and N
reads of IDENTIFY logs, one per bot. `FleetStartFacts` reads them for every bot in three queries;
each runner takes its own share once (a bot restarted later reads for itself: the
facts are only true at the fleet's start).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from beanie import PydanticObjectId
from pymongo.errors import PyMongoError

from app.db import queries
from app.db.models import MusicBot

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StartFacts:
    """One bot's share: the guilds it is recorded active in, whether it has saved players, and
    its IDENTIFYs of the last 24 h."""

    active_guilds: frozenset[int]
    has_saved_players: bool
    identify_log: list[datetime]


class FleetStartFacts:
    def __init__(
        self,
        guilds: dict[PydanticObjectId, set[int]],
        with_saved_players: set[int],
        identify_logs: dict[int, list[datetime]],
    ) -> None:
        self._guilds = guilds
        self._with_saved_players = with_saved_players
        self._identify_logs = identify_logs

    @classmethod
    async def read(cls, bots: Sequence[MusicBot]) -> FleetStartFacts | None:
        """Three queries for the whole fleet; None when the database fails (each bot reads its own)."""
        try:
            guilds = await queries.active_guild_ids_of_bots([bot.id for bot in bots if bot.id is not None])
            saved = await queries.bots_with_player_snapshots([bot.client_id for bot in bots])
            identify_logs = await queries.identify_logs([bot.client_id for bot in bots])
        except PyMongoError as exc:
            _log.warning("Could not read the fleet's guild records, saved players and IDENTIFY logs at "
                         "once (%s); each bot reads its own", exc)  # fmt: skip
            return None
        return cls(guilds, saved, identify_logs)

    def take(self, bot: MusicBot) -> StartFacts | None:
        """The bot's share, once (None: not read at the fleet's start, or already taken)."""
        guilds = self._guilds.pop(bot.id, None) if bot.id is not None else None
        if guilds is None:
            return None
        return StartFacts(
            frozenset(guilds),
            bot.client_id in self._with_saved_players,
            self._identify_logs.get(bot.client_id, []),
        )
