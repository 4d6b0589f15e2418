"""Resume after restart: each bot's players are saved to MongoDB and restored on startup.

Saved every `SNAPSHOT_INTERVAL` seconds and on shutdown (before leaving voice), so a crash loses
at most one interval. A restarted bot rejoins its channel, plays the saved track from the saved
position and restores the queue and its modes: Discord's voice session did not survive the
restart (voice close 4014), so "resume" is "rejoin, play, seek".

Restoring respects the fleet: it waits for one of the bot's Lavalink nodes (however long that
takes: Lavalink does not gate the bot), skips snapshots older than `SNAPSHOT_MAX_AGE`, and joins
under the fleet's guild lock, skipping a channel another bot of ours already serves (a user's
`/play` may have been routed there while this bot was still starting).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord
import wavelink
from pymongo.errors import PyMongoError

from app.db.models import PlayerSnapshot, SavedTrack, utcnow
from app.metrics import SNAPSHOT_WRITES
from app.music.filters import PRESETS, preset_filters
from app.music.player import ChorusPlayer
from app.shutdown import cancel_bounded

if TYPE_CHECKING:
    from app.music.service import MusicService

_log = logging.getLogger(__name__)

VoiceLike = discord.VoiceChannel | discord.StageChannel


def _saved(track: wavelink.Playable) -> SavedTrack:
    return SavedTrack(data=dict(track.raw_data), extras=dict(track.extras))


def _track(saved: SavedTrack) -> wavelink.Playable:
    track = wavelink.Playable(saved.data)  # pyright: ignore[reportArgumentType]  # Lavalink's own payload
    track.extras = saved.extras
    return track


def take_snapshot(bot_id: int, player: ChorusPlayer) -> PlayerSnapshot | None:
    if player.guild is None or player.channel is None:
        return None
    return PlayerSnapshot(
        bot_id=bot_id,
        guild_id=player.guild.id,
        voice_channel_id=player.channel.id,
        text_channel_id=player.text_channel_id,
        current=_saved(player.current) if player.current is not None else None,
        position_ms=int(player.position) if player.stranded_position is None else player.stranded_position,
        queue=[_saved(track) for track in player.queue],
        queue_mode=player.queue.mode.name,
        autoplay=player.autoplay.name,
        volume=player.volume,
        filter_preset=player.filter_preset,
        paused=player.paused,
        history=[_saved(track) for track in player.history],
        controller_message_id=player.controller_message_id,
        saved_at=utcnow(),
    )


class SnapshotKeeper:
    """Saves and restores the players of one bot."""

    def __init__(self, service: MusicService, *, interval: float, max_age: float) -> None:
        self._service = service
        self._interval = interval
        self._max_age = timedelta(seconds=max_age)
        self._tasks: list[asyncio.Task[None]] = []
        self.restored = asyncio.Event()  # set once restoring is over; until then nothing is pruned

    def start(self) -> None:
        bot_id = self._service.bot_id
        self._tasks = [
            asyncio.create_task(self._restore_when_ready(), name=f"snapshots-restore-{bot_id}"),
            asyncio.create_task(self._save_loop(), name=f"snapshots-{bot_id}"),
        ]

    async def stop(self) -> None:
        await cancel_bounded(self._tasks, 2.0, what=f"Snapshots of bot {self._service.bot_id}")

    async def _restore_when_ready(self) -> None:
        await self._service.client.wait_until_ready()
        try:
            await self.restore()
        finally:
            self.restored.set()

    async def _save_loop(self) -> None:
        # Saving does not wait for restoring (which waits for Lavalink): players started meanwhile
        # by /play are saved too; pruning waits until restoring is over.
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.save_all()
            except PyMongoError as exc:
                _log.warning("Bot %d: player snapshots not saved (%s)", self._service.bot_id, exc)

    async def save_all(self, *, prune: bool = True) -> int:
        """Upsert a snapshot per player; drop snapshots of guilds where nothing plays any more."""
        bot_id = self._service.bot_id
        collection = PlayerSnapshot.get_pymongo_collection()
        saved: list[int] = []
        for player in self._service.players():
            snapshot = take_snapshot(bot_id, player)
            if snapshot is None:
                continue
            document = snapshot.model_dump(exclude={"id", "revision_id"})
            await collection.replace_one(
                {"bot_id": bot_id, "guild_id": snapshot.guild_id}, document, upsert=True
            )
            SNAPSHOT_WRITES.inc()
            saved.append(snapshot.guild_id)
        if prune and self.restored.is_set():
            await collection.delete_many({"bot_id": bot_id, "guild_id": {"$nin": saved}})
        return len(saved)

    async def forget(self, guild_id: int) -> None:
        try:
            await PlayerSnapshot.get_pymongo_collection().delete_one(
                {"bot_id": self._service.bot_id, "guild_id": guild_id}
            )
        except PyMongoError as exc:
            _log.warning("Bot %d: snapshot of guild %d not deleted (%s)", self._service.bot_id, guild_id, exc)

    async def restore(self) -> int:
        service = self._service
        try:
            snapshots = await PlayerSnapshot.find(PlayerSnapshot.bot_id == service.bot_id).to_list()
        except PyMongoError as exc:
            _log.warning("Bot %d: snapshots unavailable (%s); nothing resumed", service.bot_id, exc)
            return 0
        if not snapshots:
            return 0
        if not service.node_ready.is_set():
            _log.info("Bot %d: %d player(s) will resume once a Lavalink node is up",
                      service.bot_id, len(snapshots))  # fmt: skip
            await service.node_ready.wait()
        resumed = 0
        for snapshot in snapshots:
            if await self._too_old(snapshot):
                continue
            try:
                resumed += await self._restore_one(snapshot)
            except Exception:
                _log.exception("Bot %d: resuming guild %d failed", service.bot_id, snapshot.guild_id)
        return resumed

    async def _restore_one(self, snapshot: PlayerSnapshot) -> bool:
        service = self._service
        guild = service.client.get_guild(snapshot.guild_id)
        channel = guild.get_channel(snapshot.voice_channel_id) if guild is not None else None
        if guild is None or not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            why = "the bot is no longer in the guild" if guild is None else "the voice channel is gone"
            _log.info(
                "Bot %d: discarding the snapshot of guild %d: %s", service.bot_id, snapshot.guild_id, why
            )
            await self.forget(snapshot.guild_id)
            return False
        async with service.fleet.lock(guild.id):  # the same lock as /play: one bot per channel
            if service.get_player(guild.id) is not None:
                return False  # a /play reached this bot first; its player is saved from now on
            serving = service.fleet.player_in_channel(guild.id, channel.id)
            if serving is not None:
                _log.info("Bot %d: not resuming guild %d: %s already plays in channel %d",
                          service.bot_id, guild.id, serving.service.name, channel.id)  # fmt: skip
                await self.forget(guild.id)
                return False
            return await self._rejoin(snapshot, channel)

    async def _too_old(self, snapshot: PlayerSnapshot) -> bool:
        age = utcnow() - snapshot.saved_at
        if age <= self._max_age:
            return False
        _log.info("Bot %d: discarding the snapshot of guild %d: saved %.0f min ago, older than %.0f min",
                  self._service.bot_id, snapshot.guild_id, age.total_seconds() / 60,
                  self._max_age.total_seconds() / 60)  # fmt: skip
        await self.forget(snapshot.guild_id)
        return True

    async def _rejoin(self, snapshot: PlayerSnapshot, channel: VoiceLike) -> bool:
        service = self._service
        guild = channel.guild
        player = await service.join(channel, text_channel_id=snapshot.text_channel_id)
        service.fleet.mark_used(service, guild.id)
        player.queue.put([_track(saved) for saved in snapshot.queue])
        player.queue.mode = _enum(wavelink.QueueMode, snapshot.queue_mode, wavelink.QueueMode.normal)
        player.autoplay = _enum(wavelink.AutoPlayMode, snapshot.autoplay, wavelink.AutoPlayMode.partial)
        preset = snapshot.filter_preset if snapshot.filter_preset in PRESETS else "reset"
        player.filter_preset = preset
        player.history.extend(_track(saved) for saved in snapshot.history)
        player.controller_message_id = snapshot.controller_message_id
        if snapshot.current is not None:
            await player.play(
                _track(snapshot.current),
                start=snapshot.position_ms,
                volume=snapshot.volume,
                paused=snapshot.paused,
                filters=preset_filters(preset),
                add_history=False,
            )
        else:
            await player.set_volume(snapshot.volume)
        queued = len(snapshot.queue)
        _log.info("Bot %d resumed guild %d in channel %d at %dms with %d queued",
                  service.bot_id, guild.id, channel.id, snapshot.position_ms, queued)  # fmt: skip
        return True


def _enum(kind: Any, name: str, default: Any) -> Any:
    return getattr(kind, name, default)
