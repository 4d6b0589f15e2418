"""One network, not N bots: which of our bots acts on a music request in a guild.

Every bot of the fleet lives in this process, so the router sees them all and one asyncio lock
per guild makes assignment race-free: two simultaneous `/play` in one channel end with one bot
and one queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from app.bots.guild_index import GuildIndex
from app.bots.invites import invite_for
from app.bots.status import BotState
from app.db import queries
from app.music.fleet import Invite

if TYPE_CHECKING:
    from app.bots.manager import BotManager
    from app.music.player import ChorusPlayer
    from app.music.service import MusicService

_log = logging.getLogger(__name__)


class FleetRouter:
    """The fleet's side of `MusicFleet`: what each bot's music asks about the others."""

    def __init__(self, manager: BotManager, *, default_guild_cap: int) -> None:
        self.manager = manager
        # Kept by each bot's runner from its gateway events: lookups cost O(our bots in the
        # guild), never O(fleet).
        self.guilds = GuildIndex()
        self._default_guild_cap = default_guild_cap
        self._locks: dict[int, asyncio.Lock] = {}
        self._last_used: dict[tuple[int, int], float] = {}

    def bot_ids(self) -> frozenset[int]:
        return self.manager.client_ids()

    def lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    def services_in_guild(self, guild_id: int) -> list[MusicService]:
        """The music services of our ready bots that are members of the guild.

        From the guild index; each entry is checked against the live client (a bot that has
        just left may still be indexed for a moment, never the other way round)."""
        services: list[MusicService] = []
        for client_id in self.guilds.bots_in(guild_id):
            runner = self.manager.get_runner(client_id)
            client = runner.client if runner is not None else None
            if (
                runner is not None
                and runner.state is BotState.READY
                and client is not None
                and client.get_guild(guild_id) is not None
            ):
                services.append(client.music)
        return services

    def player_in_channel(self, guild_id: int, channel_id: int) -> ChorusPlayer | None:
        for service in self.services_in_guild(guild_id):
            player = service.get_player(guild_id)
            if player is not None and player.channel is not None and player.channel.id == channel_id:
                return player
        return None

    def player_of(self, client_id: int, guild_id: int) -> ChorusPlayer | None:
        runner = self.manager.get_runner(client_id)
        if runner is None or runner.client is None:
            return None
        return runner.client.music.get_player(guild_id)

    def choose_for_play(self, receiving: MusicService, guild_id: int, channel_id: int) -> MusicService | None:
        """Who plays for a caller in `channel_id`; None when every bot of ours here is busy.

        1. the bot already in that channel; 2. the receiving bot if it is free in the guild;
        3. the free bot of ours in the guild used least recently. Call under `lock(guild_id)`.
        """
        services = self.services_in_guild(guild_id)
        for service in services:
            player = service.get_player(guild_id)
            if player is not None and player.channel is not None and player.channel.id == channel_id:
                return service
        free = [s for s in services if s.get_player(guild_id) is None]
        # Prefer bots with a working audio node; a free bot without one still "acts", so the
        # caller learns the backend is down rather than that every bot is busy.
        usable = [s for s in free if s.nodes.best() is not None] or free
        if any(s is receiving for s in usable):
            return receiving
        return min(usable, key=lambda s: self._last_used.get((s.bot_id, guild_id), 0.0), default=None)

    def mark_used(self, service: MusicService, guild_id: int) -> None:
        self._last_used[(service.bot_id, guild_id)] = time.monotonic()

    async def invite_for(self, guild_id: int) -> Invite | None:
        """An invite for the guild, skipping bots failed right now and bots the live fleet sees in
        the guild (their ACTIVE record may not be written yet: the guild sync follows READY)."""
        here = {service.bot_id for service in self.services_in_guild(guild_id)}

        def excluded(client_id: int) -> bool:  # asked only of the candidates the query returns
            if client_id in here:
                return True
            runner = self.manager.get_runner(client_id)
            return runner is not None and runner.state is BotState.FAILED

        return await invite_for(guild_id, default_guild_cap=self._default_guild_cap, excluded=excluded)

    async def expire_invites(self, older_than: timedelta) -> int:
        expired = await queries.expire_pending_invites(older_than)
        if expired:
            _log.info("%d pending invite(s) expired unused", expired)
        return expired
