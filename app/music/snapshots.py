"""Resume after restart: each bot's players are saved to MongoDB and restored on startup.

Saved by the worker's `MusicScheduler` every `SNAPSHOT_INTERVAL` seconds and on shutdown (before
leaving voice), so a crash loses at most one interval. Only what changed is written, all bots'
changes in one bulk write per sweep (`write_snapshots`, the one place the collection is written):

- a player new to this process: its whole document (upsert);
- a changed track, queue, history, mode, volume, filter, pause or channel: a `$set` of the small
  fields plus only the changed lists (a track ending is a `$pop` of the queue and a `$push` to
  the history, never the whole queue again);
- a playing player with nothing else changed: its position and `saved_at` only (the position is
  derivable from them, so this is all a crash needs); a paused or silent player with nothing
  changed: nothing, but `saved_at` is refreshed every `SNAPSHOT_MAX_AGE / 4` so it stays resumable;
- a player that ended: a delete. Nothing else is ever deleted by a sweep; an idle bot writes nothing.

A restarted bot rejoins its channel, plays the saved track from the saved position and restores
the queue and its modes: Discord's voice session did not survive the restart (voice close 4014),
so "resume" is "rejoin, play, seek".

Restoring respects the fleet: it waits for one of the bot's Lavalink nodes (however long that
takes: Lavalink does not gate the bot), skips snapshots older than `SNAPSHOT_MAX_AGE`, and joins
under the fleet's guild lock after taking the channel's voice assignment, skipping a channel
another bot of the fleet already serves (a user's `/play` may have been routed there while this
bot was still starting); then the assignments an older owner of the bot left are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord
import wavelink
from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from app.db.models import PlayerSnapshot, utcnow
from app.metrics import SNAPSHOT_WRITES
from app.music.filters import PRESETS, preset_filters
from app.music.fleet import ActsElsewhere
from app.music.snapshot_state import GONE, PlayerState, restored_track, take_snapshot, update_for
from app.shutdown import cancel_bounded

if TYPE_CHECKING:
    from app.music.service import MusicService

_log = logging.getLogger(__name__)

VoiceLike = discord.VoiceChannel | discord.StageChannel


@dataclass(slots=True, eq=False)
class SnapshotWrite:
    """One write of one bot's snapshot in one guild: `document` replaces it (upsert), `update`
    updates it, neither deletes it. `state`: the player's state it writes (None: a delete)."""

    keeper: SnapshotKeeper
    guild_id: int
    document: dict[str, Any] | None = None
    update: dict[str, Any] | None = None
    state: PlayerState | None = None

    @property
    def kind(self) -> str:
        return "replace" if self.document is not None else "update" if self.update is not None else "delete"


async def write_snapshots(writes: Sequence[SnapshotWrite]) -> list[SnapshotWrite]:
    """Send `writes` (of any bots) in one unordered bulk write, then tell each keeper what is
    stored now. The one place the snapshot collection is written: every filter is built here.
    Returns the writes that landed.

    Every filter carries the writing owner's lease epoch (docs/SCALING.md, "Fencing"): once a
    newer owner of the bot wrote a guild's snapshot, an older owner's update or delete matches
    nothing and its upsert collides with the unique (bot, guild) index. Both mean "not ours"
    (the keeper is told, the fleet checks the lease), never an error. A keeper's first update of
    a snapshot it did not write whole stamps its epoch, so a new owner's first write fences the
    old one off.

    The keepers recorded each write as done when they made it (so a second write made
    meanwhile, by a bot's shutdown save, builds on it and never repeats a `$pop`); on failure
    they are told, and the next sweep writes those players' whole documents again (and deletes
    again), which is always correct."""
    if not writes:
        return []
    requests: list[ReplaceOne[Any] | UpdateOne | DeleteOne] = []
    for write in writes:
        where = {"bot_id": write.keeper.bot_id, "guild_id": write.guild_id, **write.keeper.fence()}
        if write.document is not None:
            requests.append(ReplaceOne(where, write.document, upsert=True))
        elif write.update is not None:
            requests.append(UpdateOne(where, write.update))
        else:
            requests.append(DeleteOne(where))
    collection = PlayerSnapshot.get_pymongo_collection()
    fenced: set[int] = set()  # indexes into `writes`
    failed: set[int] = set()
    error: PyMongoError | None = None
    try:
        result = await collection.bulk_write(requests, ordered=False)
        matched = result.matched_count + result.upserted_count
    except BulkWriteError as exc:
        for write_error in exc.details.get("writeErrors", []):
            duplicate = write_error.get("code") == _DUPLICATE_KEY
            (fenced if duplicate else failed).add(write_error["index"])
        matched = exc.details.get("nMatched", 0) + exc.details.get("nUpserted", 0)
        if failed or exc.details.get("writeConcernErrors"):
            error = exc
    except PyMongoError:
        for write in writes:
            write.keeper.write_failed(write)
        raise
    finally:
        SNAPSHOT_WRITES.inc(len(requests))
    # A fenced (or vanished) update matches nothing, and a bulk write counts matches only in
    # total: read back which, only when fewer matched than were sent (rare: a takeover).
    sent = [i for i, write in enumerate(writes) if write.state is not None and i not in fenced | failed]
    if matched < len(sent):
        updates = [writes[i] for i in sent if writes[i].update is not None]
        try:
            missed = await _missed_updates(updates)
        except PyMongoError as exc:  # unknown which: every update is written whole next time
            missed = dict.fromkeys(updates, False)
            error = error or exc
        for i in sent:
            if writes[i] in missed:
                (fenced if missed[writes[i]] else failed).add(i)
    landed: list[SnapshotWrite] = []
    for i, write in enumerate(writes):
        if i in fenced:
            write.keeper.fenced(write)
        elif i in failed:
            write.keeper.write_failed(write)
        else:
            write.keeper.written(write)
            landed.append(write)
    if error is not None:
        raise error
    return landed


_DUPLICATE_KEY = 11000


async def _missed_updates(updates: list[SnapshotWrite]) -> dict[SnapshotWrite, bool]:
    """Of `updates`, those whose snapshot a newer owner holds (True) or that is gone (False)."""
    if not updates:
        return {}
    keys = [{"bot_id": write.keeper.bot_id, "guild_id": write.guild_id} for write in updates]
    projection = {"bot_id": 1, "guild_id": 1, "epoch": 1, "_id": 0}
    stored = {
        (document["bot_id"], document["guild_id"]): document.get("epoch", 0)
        async for document in PlayerSnapshot.get_pymongo_collection().find({"$or": keys}, projection)
    }
    missed: dict[SnapshotWrite, bool] = {}
    for write in updates:
        epoch = stored.get((write.keeper.bot_id, write.guild_id))
        if epoch is None:
            missed[write] = False
        elif epoch > write.keeper.epoch:
            missed[write] = True
    return missed


class SnapshotKeeper:
    """Saves and restores the players of one bot; the worker's scheduler asks it what changed."""

    def __init__(self, service: MusicService, *, max_age: float) -> None:
        self._service = service
        self._max_age = timedelta(seconds=max_age)
        # A paused or silent player with nothing changed still refreshes `saved_at` this often,
        # so that it is not discarded as too old when the bot restarts.
        self._refresh_after = max_age / 4
        # guild -> what the database holds, as our writes (once done) leave it
        self._stored: dict[int, PlayerState] = {}
        self._broken: set[int] = set()  # guilds whose last write failed: written whole next time
        # guilds whose stored snapshot carries this owner's epoch (written whole, or stamped by an
        # update): the others' next update sets it (a restored player's snapshot has an older one)
        self._stamped: set[int] = set()
        self._restore_task: asyncio.Task[None] | None = None
        self.restored = asyncio.Event()  # set once restoring is over
        self._nothing_saved = False  # known (read for the whole fleet): restore reads nothing
        self._nothing_assigned = False  # known: no voice assignment of an older owner to clean

    @property
    def bot_id(self) -> int:
        return self._service.bot_id

    @property
    def epoch(self) -> int:
        """The lease epoch this bot runs under (0 outside a fleet with leases)."""
        return self._service.config.lease_epoch or 0

    def fence(self) -> dict[str, Any]:
        """The filter that matches only snapshots no newer owner of the bot wrote."""
        epoch = self._service.config.lease_epoch
        return {} if epoch is None else {"epoch": {"$not": {"$gt": epoch}}}

    def nothing_saved(self) -> None:
        """The fleet's start found no saved player of this bot: its restore skips its read."""
        self._nothing_saved = True

    def nothing_assigned(self) -> None:
        """The bot's start found no voice assignment of it: nothing an older owner left to clean."""
        self._nothing_assigned = True

    def start(self) -> None:
        name = f"snapshots-restore-{self.bot_id}"
        self._restore_task = asyncio.create_task(self._restore_when_ready(), name=name)

    async def stop(self) -> None:
        await cancel_bounded([self._restore_task], 2.0, what=f"Snapshots of bot {self.bot_id}")

    def has_work(self) -> bool:
        """Anything a sweep may have to write: a player, or a stored snapshot (it may have ended)."""
        return bool(self._stored) or bool(self._service.players())

    async def _restore_when_ready(self) -> None:
        await self._service.client.wait_until_ready()
        try:
            await self.restore()
        finally:
            self.restored.set()
        # Every player this owner will resume has its assignment again (under this epoch): what an
        # older owner of the bot left is stale (nothing, when its start found no row of it).
        if self._nothing_assigned:
            self._nothing_assigned = False
            return
        await self._service.fleet.clean_voice(self._service)

    def changes(self, now: float, *, deletions: bool = True) -> list[SnapshotWrite]:
        """What to write so the database matches this bot's players (cheap when nothing changed:
        comparisons only, no serialisation). `deletions=False`: players that ended are kept."""
        writes: list[SnapshotWrite] = []
        seen: set[int] = set()
        for player in self._service.players():
            state = PlayerState.of(player, now)
            if state is None or player.guild is None:
                continue
            guild_id = player.guild.id
            seen.add(guild_id)
            old = self._stored.get(guild_id)
            if old is None or old is GONE or guild_id in self._broken:
                snapshot = take_snapshot(self.bot_id, player, epoch=self.epoch)
                if snapshot is not None:
                    document = snapshot.model_dump(exclude={"id", "revision_id"})
                    writes.append(SnapshotWrite(self, guild_id, document=document, state=state))
                    self._stored[guild_id] = state
                    self._stamped.add(guild_id)
                continue
            update = update_for(old, state, now, refresh_after=self._refresh_after)
            if update is not None:
                if guild_id not in self._stamped:
                    update["$set"]["epoch"] = self.epoch
                    self._stamped.add(guild_id)
                writes.append(SnapshotWrite(self, guild_id, update=update, state=state))
                self._stored[guild_id] = state
        if not deletions:
            return writes
        # Players that ended (left, destroyed) since the last sweep.
        for guild_id in self._stored.keys() - seen:
            writes.append(SnapshotWrite(self, guild_id))
            del self._stored[guild_id]
            self._stamped.discard(guild_id)
        return writes

    def written(self, write: SnapshotWrite) -> None:
        if write.document is not None or write.state is None:  # whole again, or gone
            self._broken.discard(write.guild_id)

    def fenced(self, write: SnapshotWrite) -> None:
        """A newer owner of the bot holds this snapshot: this one is stale (the fleet checks)."""
        _log.warning("Bot %d: the snapshot of guild %d was fenced off (epoch %d): a newer owner "
                     "runs this bot", self.bot_id, write.guild_id, self.epoch)  # fmt: skip
        if write.state is not None:
            self._broken.add(write.guild_id)  # written whole if it is ours again
        self._service.fleet.lease_fenced(self.bot_id)

    def write_failed(self, write: SnapshotWrite) -> None:
        if write.state is not None:
            self._broken.add(write.guild_id)  # unknown now: written whole next time
        elif write.guild_id not in self._stored:
            self._stored[write.guild_id] = GONE  # deleted again next time

    async def save_all(self) -> int:
        """Write this bot's changes now, to resume after a restart: never a deletion (its players
        leaving voice to restart have not ended; a stop cut short may save twice). Returns how
        many players were written."""
        writes = self.changes(asyncio.get_running_loop().time(), deletions=False)
        landed = await write_snapshots(writes)
        return sum(1 for write in landed if write.state is not None)

    async def forget(self, guild_id: int) -> None:
        """Nothing to resume in the guild (a deliberate leave, a discarded snapshot)."""
        self._stored.pop(guild_id, None)
        self._stamped.discard(guild_id)
        try:
            await write_snapshots([SnapshotWrite(self, guild_id)])
        except PyMongoError as exc:
            _log.warning("Bot %d: snapshot of guild %d not deleted (%s)", self.bot_id, guild_id, exc)
            self._service.scheduler.wake(self._service)  # the sweeps delete it again

    async def restore(self) -> int:
        service = self._service
        if self._nothing_saved:
            self._nothing_saved = False  # true once, at the fleet's start
            return 0
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
                if service.get_player(snapshot.guild_id) is None:
                    await self.forget(snapshot.guild_id)  # it would fail again at every start
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
            # The channel's voice assignment, fleet-wide, before rejoining: a /play may have sent
            # another bot (of any worker) there while this one was starting.
            try:
                serving = await service.fleet.take_voice(service, guild.id, channel.id)
            except ActsElsewhere as elsewhere:
                serving, other = None, f"bot {elsewhere.bot_id} (another worker)"
            else:
                other = serving.name
            if serving is not service:
                _log.info("Bot %d: not resuming guild %d: %s already plays in channel %d",
                          service.bot_id, guild.id, other, channel.id)  # fmt: skip
                await self.forget(guild.id)
                return False
            try:
                return await self._rejoin(snapshot, channel)
            except BaseException:
                if service.get_player(guild.id) is None:
                    service.fleet.release_voice(service, guild.id)
                raise

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
        player.queue.put([restored_track(saved) for saved in snapshot.queue])
        player.queue.mode = _enum(wavelink.QueueMode, snapshot.queue_mode, wavelink.QueueMode.normal)
        player.autoplay = _enum(wavelink.AutoPlayMode, snapshot.autoplay, wavelink.AutoPlayMode.partial)
        preset = snapshot.filter_preset if snapshot.filter_preset in PRESETS else "reset"
        player.filter_preset = preset
        player.history.extend(restored_track(saved) for saved in snapshot.history)
        player.controller_message_id = snapshot.controller_message_id
        if snapshot.current is not None:
            await player.play(
                restored_track(snapshot.current),
                start=snapshot.position_ms,
                volume=snapshot.volume,
                paused=snapshot.paused,
                filters=preset_filters(preset),
                add_history=False,
            )
        else:
            await player.set_volume(snapshot.volume)
        # The database holds this already: the next sweep writes only what changes from here (a
        # paused player's `saved_at` is refreshed as if it had been written when it was saved).
        age = (utcnow() - snapshot.saved_at).total_seconds()
        state = PlayerState.of(player, asyncio.get_running_loop().time() - age)
        if state is not None:
            self._stored.setdefault(guild.id, state)
        queued = len(snapshot.queue)
        _log.info("Bot %d resumed guild %d in channel %d at %dms with %d queued",
                  service.bot_id, guild.id, channel.id, snapshot.position_ms, queued)  # fmt: skip
        return True


def _enum(kind: Any, name: str, default: Any) -> Any:
    return getattr(kind, name, default)
