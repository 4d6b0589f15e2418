"""One network, not N bots: which of our bots acts on a music request in a guild.

The router decides fleet-wide: the bots of this worker from memory, the others from the voice
assignments (`voice_assignments`, mirrored by the fleet view, read fresh for `/play`) and the
guild records. An asyncio lock per guild orders this worker's own requests; across workers the
unique `(guild, channel)` index of the assignments decides: two simultaneous `/play` in one
channel, through any workers, end with one bot and one queue. When the acting bot runs on another
worker the decision raises `ActsElsewhere` and the fleet forwards the interaction there
(docs/SCALING.md, "Routing across workers").
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from beanie import PydanticObjectId
from pymongo.errors import PyMongoError

from app.bots.guild_index import GuildIndex
from app.bots.invites import invite_for
from app.bots.status import BotState
from app.db import queries
from app.db import routing as routing_db
from app.db.models import ServerStatus
from app.music.errors import BotNotResponding
from app.music.fleet import ActsElsewhere, Invite

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
        self._background: set[asyncio.Task[None]] = set()

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
        assignment = self.manager.fleet.view.voice(guild_id, channel_id)
        if assignment is not None and self._runs_elsewhere(assignment.bot_id):
            raise ActsElsewhere(assignment.bot_id)
        return None

    def _runs_elsewhere(self, bot_id: int) -> bool:
        """A live worker other than this one holds the bot's lease."""
        owner = self.manager.fleet.owner_of(bot_id)
        return owner is not None and owner.id != self.manager.fleet.me

    def _ready_elsewhere(self, bot_id: int) -> bool:
        """Runs on another worker and, as far as its owner has published, is ready (a status not
        published yet counts: the owner holds the lease; if the bot cannot take the request, the
        forward is not claimed and the user hears "not responding")."""
        if not self._runs_elsewhere(bot_id):
            return False
        lease = self.manager.fleet.view.lease(bot_id)
        status = lease.status if lease is not None else None
        return status is None or status.state == BotState.READY.value

    def player_of(self, client_id: int, guild_id: int) -> ChorusPlayer | None:
        runner = self.manager.get_runner(client_id)
        if runner is None or runner.client is None:
            return None
        return runner.client.music.get_player(guild_id)

    async def choose_for_play(
        self, receiving: MusicService, guild_id: int, channel_id: int
    ) -> MusicService | None:
        """Who plays for a caller in `channel_id`; None when every bot of the fleet here is busy.

        1. the bot already in that channel (ours, or another worker's: ActsElsewhere);
        2. the receiving bot if it is free in the guild; 3. a free bot of this worker in the guild,
        the one used least recently; 4. a free ready bot of another worker that is a member of the
        guild (ActsElsewhere). Call under `lock(guild_id)`.
        """
        services = self.services_in_guild(guild_id)
        for service in services:
            player = service.get_player(guild_id)
            if player is not None and player.channel is not None and player.channel.id == channel_id:
                return service
        try:
            assignments = await routing_db.voice_in_guild(guild_id)
        except PyMongoError as exc:  # this worker's own bots can still be routed
            _log.warning("Guild %d: voice assignments unavailable (%s); routing among this worker's bots",
                         guild_id, exc)  # fmt: skip
            assignments = None
        local = {service.bot_id for service in services}
        assigned = {a.bot_id for a in assignments or ()}
        for assignment in assignments or ():
            # (A row naming a bot of this worker that has no player there is stale: that bot is free.)
            if (
                assignment.channel_id == channel_id
                and assignment.bot_id not in local
                and self._runs_elsewhere(assignment.bot_id)
            ):
                raise ActsElsewhere(assignment.bot_id)
        free = [s for s in services if s.get_player(guild_id) is None]
        # Prefer bots with a working audio node; a free bot without one still "acts", so the
        # caller learns the backend is down rather than that every bot is busy.
        usable = [s for s in free if s.nodes.best() is not None]
        if any(s is receiving for s in usable):
            return receiving
        if usable:
            return min(usable, key=lambda s: self._last_used.get((s.bot_id, guild_id), 0.0))
        if assignments is not None:
            remote = [b for b in await self._members(guild_id) if b not in local and b not in assigned]
            ready = [b for b in remote if self._ready_elsewhere(b)]
            if ready:
                raise ActsElsewhere(min(ready, key=lambda b: (self._last_used.get((b, guild_id), 0.0), b)))
        if any(s is receiving for s in free):
            return receiving
        return min(free, key=lambda s: self._last_used.get((s.bot_id, guild_id), 0.0), default=None)

    async def _members(self, guild_id: int) -> list[int]:
        """Client ids of the fleet's bots whose guild record says they are in the guild."""
        by_record: dict[PydanticObjectId, int] = {}
        for client_id in self.manager.fleet_bot_ids():
            record = self.manager.record(client_id)
            if record is not None and record.id is not None and record.enabled:
                by_record[record.id] = client_id
        try:
            records = await queries.guild_assignments(guild_id)
        except PyMongoError as exc:
            _log.warning("Guild %d: guild records unavailable (%s)", guild_id, exc)
            return []
        return [
            by_record[r.music_bot_id]
            for r in records
            if r.status is ServerStatus.ACTIVE and r.music_bot_id in by_record
        ]

    async def take_voice(self, service: MusicService, guild_id: int, channel_id: int) -> MusicService:
        fleet = self.manager.fleet
        for _ in range(2):  # a second try after clearing a stale row (its bot has no player there)
            try:
                holder = await routing_db.take_voice(
                    guild_id,
                    channel_id,
                    service.bot_id,
                    worker=fleet.me,
                    epoch=fleet.epoch_of(service.bot_id),
                )
            except routing_db.AssignmentFenced:
                self.lease_fenced(service.bot_id)
                raise BotNotResponding() from None
            except PyMongoError as exc:
                # The guild lock still keeps this worker's bots apart; the database is down, so
                # every worker's bots stop at their renew deadline anyway.
                _log.warning("Guild %d: voice assignment not recorded (%s)", guild_id, exc)
                return service
            if holder == service.bot_id:
                return service
            if self._runs_elsewhere(holder):
                raise ActsElsewhere(holder)
            serving = next((s for s in self.services_in_guild(guild_id) if s.bot_id == holder), None)
            player = serving.get_player(guild_id) if serving is not None else None
            if serving is not None and player is not None and player.channel is not None \
                    and player.channel.id == channel_id:  # fmt: skip
                return serving
            # The holder has no player in that channel (a row its owner left, or its owner is
            # gone): clear that row, fenced by the holder's current epoch, and try again.
            _log.info("Guild %d: clearing a stale voice assignment of bot %d in channel %d",
                      guild_id, holder, channel_id)  # fmt: skip
            if serving is not None:
                epoch = fleet.epoch_of(holder)
            else:
                lease = fleet.view.lease(holder)
                epoch = lease.epoch if lease is not None else None
            try:
                await routing_db.release_voice(guild_id, holder, epoch=epoch, channel_id=channel_id)
            except PyMongoError as exc:
                _log.warning("Guild %d: stale voice assignment not cleared (%s)", guild_id, exc)
                return service
        raise BotNotResponding()  # the channel's holder changed under us twice: let the user retry

    def release_voice(self, service: MusicService, guild_id: int) -> None:
        task = asyncio.create_task(self._release(service, guild_id), name=f"release-voice-{service.bot_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _release(self, service: MusicService, guild_id: int) -> None:
        async with self.lock(guild_id):  # after any join in progress: it may have rejoined
            if service.get_player(guild_id) is not None:
                return
            try:
                await routing_db.release_voice(guild_id, service.bot_id, epoch=service.config.lease_epoch)
            except PyMongoError as exc:
                _log.warning("Bot %d: voice assignment in guild %d not released (%s); its next owner "
                             "or a /play there clears it", service.bot_id, guild_id, exc)  # fmt: skip

    async def clean_voice(self, service: MusicService) -> None:
        epoch = service.config.lease_epoch
        if epoch is None:
            return
        try:
            cleaned = await routing_db.clean_voice(service.bot_id, epoch=epoch)
        except PyMongoError as exc:
            _log.warning("Bot %d: old voice assignments not cleaned up (%s)", service.bot_id, exc)
            return
        if cleaned:
            _log.info(
                "Bot %d: cleared %d voice assignment(s) its previous owner left", service.bot_id, cleaned
            )

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

    def lease_fenced(self, bot_id: int) -> None:
        self.manager.lease_fenced(bot_id)

    async def expire_invites(self, older_than: timedelta) -> int:
        expired = await queries.expire_pending_invites(older_than)
        if expired:
            _log.info("%d pending invite(s) expired unused", expired)
        return expired
