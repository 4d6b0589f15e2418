"""`MusicService`: the music side of one bot: its nodes, its players, its guild settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import discord
import wavelink
from discord.ext import commands
from pymongo.errors import PyMongoError

from app.i18n import Tr
from app.music.channel_status import ChannelStatus
from app.music.config import LavalinkNodeSpec
from app.music.controller import Controllers
from app.music.errors import AudioBackendUnavailable, MissingVoicePermission, MusicError, NoResults
from app.music.fleet import MusicFleet
from app.music.formatting import format_duration
from app.music.guild_settings import GuildSettingsStore
from app.music.language import LanguageStore
from app.music.nodes import BotNodes, fetch_tracks
from app.music.player import ChorusPlayer
from app.music.scheduler import MusicScheduler
from app.music.search_cache import SearchCache
from app.music.snapshots import SnapshotKeeper
from app.shutdown import cancel_bounded, run_bounded

_log = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0  # seconds Discord has to confirm a voice join (VOICE_STATE + VOICE_SERVER)


@dataclass(frozen=True, slots=True)
class MusicConfig:
    nodes: Sequence[LavalinkNodeSpec]
    search_prefix: str = "ytsearch"
    idle_timeout: float = 300.0
    queue_limit: int = 500
    max_track_ms: int = 0  # 0: no limit
    reconnect_max_delay: float = 10.0
    snapshot_max_age: float = 3600.0
    # The epoch of the bot's lease (docs/SCALING.md): player snapshots carry it and are fenced by
    # it, so an owner that lost the bot never overwrites its successor's. None: not fenced.
    lease_epoch: int | None = None


class MusicService:
    def __init__(
        self,
        client: commands.Bot,
        config: MusicConfig,
        *,
        bot_id: int,
        fleet: MusicFleet,
        scheduler: MusicScheduler,
    ) -> None:
        """Created with its client, before login (nothing starts until `start`): the cogs are
        built with it, so they never look it up on the client. `scheduler` is the worker's: it
        does this bot's periodic work (idle players, snapshots) along with every other bot's."""
        self.client = client
        self.config = config
        self.bot_id = bot_id
        self.nodes = BotNodes(
            client,
            config.nodes,
            bot_id=bot_id,
            reconnect_max_delay=config.reconnect_max_delay,
        )
        self.guild_settings = GuildSettingsStore(self.bot_id)
        self.languages = LanguageStore(self.guild_settings)
        self.controllers = Controllers(self)
        self.channel_status = ChannelStatus(self)
        self.autocomplete = SearchCache()
        self.fleet = fleet
        self._closing = False
        self._chores: set[asyncio.Task[None]] = set()  # cleanups after a player left
        self.scheduler = scheduler
        # Ours, not discord.py's `voice_clients`: a re-identify (op 9, close 4009) clears those
        # while Lavalink keeps playing, and the players must survive it.
        self._players: dict[int, ChorusPlayer] = {}
        self.snapshots = SnapshotKeeper(self, max_age=config.snapshot_max_age)
        self.node_ready = asyncio.Event()
        self.tracks_played = 0  # set when any of this bot's nodes first becomes ready
        # Its lease is lost: close without saving players or leaving voice (the next owner resumes
        # from the last periodic snapshot and rejoins; the database may be down).
        self.abandoned = False

    @property
    def name(self) -> str:
        user = self.client.user
        return user.name if user is not None else str(self.bot_id)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Called from `setup_hook`: returns at once. Lavalink nodes connect in the background, so
        the bot's Discord session never waits for them (music answers "audio backend
        unavailable" until one is up)."""
        self.client.add_listener(self._on_ready, "on_ready")
        self.client.add_listener(self._on_node_ready, "on_wavelink_node_ready")
        self.client.add_listener(self._on_node_disconnected, "on_wavelink_node_disconnected")
        self.client.add_listener(self._on_track_start, "on_wavelink_track_start")
        self.client.add_listener(self._on_track_exception, "on_wavelink_track_exception")
        self.nodes.start()
        self.snapshots.start()
        self.scheduler.add(self)

    def abandon(self) -> None:
        """The fleet took the bot away: the next `close` writes nothing and leaves no channel."""
        self.abandoned = True

    async def close(self) -> None:
        """Save every player (to resume after a restart), leave voice cleanly, close the nodes.

        Lavalink reconnects stop first, synchronously, and the nodes close in `finally`: a close
        cut short by its timeout still leaves nothing of this bot connecting to Lavalink.
        Abandoned (its lease is lost): only the tasks and the nodes close.
        """
        self.nodes.stop_connecting()
        self._closing = True  # leaving voice to restart: controllers and statuses stay for the resume
        self.scheduler.remove(self)  # this bot's last save is its own, below
        try:
            await self.snapshots.stop()
            if self.abandoned:
                return
            await run_bounded(self._save_for_restart(), 5.0, what=f"Saving the players of bot {self.bot_id}")
            for player in self.players():
                await run_bounded(player.disconnect(), 5.0, what=f"Leaving voice (bot {self.bot_id})")
            await cancel_bounded(list(self._chores), 2.0, what=f"Player cleanups of bot {self.bot_id}")
        finally:
            await self.nodes.close()

    async def _save_for_restart(self) -> None:
        try:
            saved = await self.snapshots.save_all()
        except PyMongoError as exc:
            _log.warning("Bot %d: players not saved on shutdown (%s)", self.bot_id, exc)
            return
        if saved:
            _log.info("Bot %d saved %d player(s) to resume after the restart", self.bot_id, saved)

    # -- players ------------------------------------------------------------------------------

    def players(self) -> list[ChorusPlayer]:
        return list(self._players.values())

    def get_player(self, guild_id: int) -> ChorusPlayer | None:
        return self._players.get(guild_id)

    def forget_player(self, player: ChorusPlayer) -> None:
        """The player ended (left voice, destroyed): see `ChorusPlayer.cleanup`. Its voice
        assignment is released (not when the bot was taken away: its next owner cleans up); its
        controller message and its voice channel status go too (not when the bot stops to restart)."""
        known = False
        for guild_id, mine in list(self._players.items()):
            if mine is player:
                del self._players[guild_id]
                if not self.abandoned:
                    self.fleet.release_voice(self, guild_id)
                known = True
        if known and not self._closing:
            task = asyncio.get_running_loop().create_task(
                self._after_leave(player), name=f"music-left-{self.bot_id}"
            )
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    async def _after_leave(self, player: ChorusPlayer) -> None:
        try:
            await self.channel_status.clear(player)
            await self.controllers.remove(player)
        except Exception:
            _log.exception("Bot %d: cleaning up after a player of guild %s failed", self.bot_id, _gid(player))

    async def leave(self, player: ChorusPlayer) -> None:
        """A deliberate leave: nothing to resume after a restart."""
        guild_id = player.guild.id if player.guild is not None else None
        await self.channel_status.clear(player)  # while still in the channel (Discord wants that)
        await player.disconnect()
        if guild_id is not None:
            await self.snapshots.forget(guild_id)

    def ensure_backend(self, player: ChorusPlayer | None = None) -> None:
        """Raise the user-facing error when this bot has no usable audio node."""
        if player is not None and self.nodes.is_healthy(player.node):
            return
        if self.nodes.best() is None:
            raise AudioBackendUnavailable()

    def check_can_join(self, channel: discord.VoiceChannel | discord.StageChannel) -> None:
        me = channel.guild.me
        permissions = channel.permissions_for(me)
        if not permissions.connect:
            raise MissingVoicePermission(channel.mention, "connect")
        if not permissions.speak and not isinstance(channel, discord.StageChannel):
            raise MissingVoicePermission(channel.mention, "speak")
        if (
            channel.user_limit
            and len(channel.voice_states) >= channel.user_limit
            and not permissions.move_members
        ):
            raise MusicError("error.channel_full", channel=channel.mention)

    def _new_player(self, client: discord.Client, channel: discord.abc.Connectable) -> ChorusPlayer:
        return ChorusPlayer(client, channel, service=self)

    async def join(
        self, channel: discord.VoiceChannel | discord.StageChannel, *, text_channel_id: int | None
    ) -> ChorusPlayer:
        self.check_can_join(channel)
        node = self.nodes.best()
        if node is None:
            raise AudioBackendUnavailable()
        try:
            player = await channel.connect(cls=self._new_player, self_deaf=True, timeout=JOIN_TIMEOUT)
        except BaseException as exc:
            # discord.py keeps a voice client whose connect failed registered: without this, every
            # later join in the guild would fail with "Already connected".
            stray = channel.guild.voice_client
            if isinstance(stray, ChorusPlayer) and self.get_player(channel.guild.id) is not stray:
                await run_bounded(stray.disconnect(), 5.0, what=f"Dropping a failed join (bot {self.bot_id})")
            if isinstance(exc, wavelink.ChannelTimeoutException):
                # Discord never confirmed the join (an outage, or a channel changed under us): the
                # caller learns that, not "something went wrong".
                _log.warning(
                    "Bot %d: Discord did not confirm joining voice %d in guild %d within %.0f s",
                    self.bot_id,
                    channel.id,
                    channel.guild.id,
                    JOIN_TIMEOUT,
                )
                raise MusicError("error.join_timeout", channel=channel.mention) from None
            raise
        self._players[channel.guild.id] = player
        self.scheduler.wake(self)
        player.autoplay = wavelink.AutoPlayMode.partial  # wavelink advances the queue: the one mechanism
        player.text_channel_id = text_channel_id
        player.queue.mode = wavelink.QueueMode.normal
        _log.info(
            "Bot %d joined voice %d in guild %d on node %s",
            self.bot_id,
            channel.id,
            channel.guild.id,
            player.node.identifier,
        )
        return player

    async def search(self, query: str) -> list[wavelink.Playable] | wavelink.Playlist:
        node = self.nodes.best()
        if node is None:
            raise AudioBackendUnavailable()
        query = query.strip()
        identifier = (
            query if _is_url(query) or _SEARCH_PREFIX.match(query) else f"{self.config.search_prefix}:{query}"
        )
        try:
            result = await fetch_tracks(node, identifier)
        except wavelink.LavalinkLoadException as exc:
            raise MusicError("error.load_failed", reason=exc.error[:150]) from None
        except (wavelink.LavalinkException, wavelink.NodeException, aiohttp.ClientError) as exc:
            _log.warning("Bot %d: search on node %s failed: %s", self.bot_id, node.identifier, exc)
            raise AudioBackendUnavailable() from None
        if not result:
            service = _mirrored_service(query)
            if service is not None:  # such links only resolve through the LavaSrc plugin
                raise MusicError("error.link_needs_plugin", service=service)
            raise NoResults(query)
        return result

    def check_track(self, track: wavelink.Playable) -> None:
        limit = self.config.max_track_ms
        if limit and not track.is_stream and track.length > limit:
            raise MusicError("error.track_too_long", title=track.title[:80], limit=format_duration(limit))

    def queue_room(self, player: ChorusPlayer) -> int:
        return max(0, self.config.queue_limit - len(player.queue))

    def listeners(self, player: ChorusPlayer) -> list[int]:
        """Users in the player's channel other than our bots (member cache is off by design)."""
        channel = player.channel
        if channel is None:
            return []
        fleet = self.fleet.bot_ids()
        return [
            user_id for user_id in channel.voice_states if user_id != self.bot_id and user_id not in fleet
        ]

    # -- node failover --------------------------------------------------------------------------

    async def _on_node_disconnected(self, payload: wavelink.NodeDisconnectedEventPayload) -> None:
        node = payload.node
        if not self.nodes.owns(node):
            return
        stranded = [p for p in self.players() if p.node is node]
        if stranded:  # the node's own trouble is logged once per episode by BotNodes
            _log.info("Bot %d: Lavalink node %s lost; %d player(s) to move",
                      self.bot_id, node.identifier, len(stranded))  # fmt: skip
        for player in stranded:
            position = int(player.position)
            target = self.nodes.best(exclude=node)
            if target is None:
                player.stranded_position = position
                continue
            await self._relocate(player, target, position)

    async def _relocate(self, player: ChorusPlayer, node: wavelink.Node, position: int) -> None:
        """Continue the player on `node` at `position`; on failure it stays stranded there, so the
        next node of this bot that becomes ready tries again."""
        try:
            await player.relocate(node, position=position)
        except Exception:
            _log.exception(
                "Bot %d: guild %s could not continue on node %s", self.bot_id, _gid(player), node.identifier
            )
            player.stranded_position = position
            return
        _log.info(
            "Bot %d: guild %s continues on node %s at %dms",
            self.bot_id,
            _gid(player),
            node.identifier,
            position,
        )

    async def _on_node_ready(self, payload: wavelink.NodeReadyEventPayload) -> None:
        node = payload.node
        if not self.nodes.owns(node):
            return
        self.node_ready.set()
        if payload.resumed:
            # Lavalink kept this session and its players: nothing on this node was lost, so what
            # was frozen when it dropped is stale now (snapshots would save it, a later fresh
            # session would rewind to it).
            for player in self.players():
                if player.node is node and player.stranded_position is not None:
                    player.stranded_position = None
                    _log.info("Bot %d: guild %s resumed with node %s",
                              self.bot_id, _gid(player), node.identifier)  # fmt: skip
        # Players stranded anywhere else, or (fresh session) left on this node, which lost them
        # when it restarted: re-created here at their saved position.
        for player in self.players():
            on_this_node = player.node is node
            if payload.resumed and on_this_node:
                continue
            if player.stranded_position is None and not on_this_node:
                continue
            position = (
                player.stranded_position if player.stranded_position is not None else int(player.position)
            )
            await self._relocate(player, node, position)

    # -- a new Discord session ----------------------------------------------------------------------

    async def _on_ready(self) -> None:
        """After a re-identify (op 9, close 4009) discord.py rebuilt every guild and forgot its
        voice clients, while Lavalink kept playing. Re-attach each player to the new objects and
        renew its voice session on the new gateway session (op 4 to its own channel: Discord
        answers with a fresh voice state and server, which the player forwards to Lavalink)."""
        state = self.client._connection  # pyright: ignore[reportPrivateUsage]  # its voice client registry
        for guild_id, player in list(self._players.items()):
            guild = self.client.get_guild(guild_id)
            if guild is not None and guild is player.guild and state._get_voice_client(guild_id) is player:  # pyright: ignore[reportPrivateUsage]
                continue  # the same session: nothing was lost
            channel_id = player.channel.id if player.channel is not None else None
            channel = guild.get_channel(channel_id) if guild is not None and channel_id else None
            if guild is None or not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                _log.info("Bot %d: guild %d or its voice channel is gone after a new session; "
                          "stopping its player", self.bot_id, guild_id)  # fmt: skip
                self.forget_player(player)
                await run_bounded(player._destroy(), 5.0, what=f"Dropping a player (bot {self.bot_id})")  # pyright: ignore[reportPrivateUsage]  # no guild left to leave
                await self.snapshots.forget(guild_id)
                continue
            player.reattach(guild, channel)
            try:
                await guild.change_voice_state(channel=channel, self_deaf=True)
            except (discord.ClientException, ConnectionError) as exc:
                _log.warning("Bot %d: could not renew voice in guild %d (%s)", self.bot_id, guild_id, exc)
                continue
            _log.info("Bot %d: player of guild %d kept across a new Discord session", self.bot_id, guild_id)

    # -- announcements ----------------------------------------------------------------------------

    async def _on_track_start(self, payload: wavelink.TrackStartEventPayload) -> None:
        player = payload.player
        if not isinstance(player, ChorusPlayer) or player.guild is None:
            return
        player.skip_votes.clear()
        player.idle_since = None
        player.record_played(payload.track)
        self.tracks_played += 1
        for show in (self.channel_status.show, self.controllers.show):
            try:
                await show(player, payload.track)
            except Exception:  # one of them failing never stops the other, nor the music
                _log.exception("Bot %d: now-playing update of guild %d failed", self.bot_id, player.guild.id)

    async def _on_track_exception(self, payload: wavelink.TrackExceptionEventPayload) -> None:
        guild_id = payload.player.guild.id if payload.player and payload.player.guild else None
        _log.warning(
            "Bot %d guild %s: track %r failed: %s",
            self.bot_id,
            guild_id,
            payload.track.title,
            payload.exception,
        )

    # -- idleness -----------------------------------------------------------------------------

    async def check_idle(self, now: float) -> None:
        """Leave after `idle_timeout` of nothing playing or nobody listening, unless 24/7.
        Called by the worker's scheduler every `idle_check_interval` while this bot has players."""
        timeout = self.config.idle_timeout
        if not timeout:
            return
        for player in self.players():
            try:
                await self._check_idle(player, now, timeout)
            except Exception:
                _log.exception("Bot %d: idle check failed", self.bot_id)

    async def _check_idle(self, player: ChorusPlayer, now: float, timeout: float) -> None:
        if player.guild is None:
            return
        busy = player.playing and not player.paused and bool(self.listeners(player))
        if busy:
            player.idle_since = None
            return
        if player.idle_since is None:
            player.idle_since = now
            return
        if now - player.idle_since < timeout:
            return
        if (await self.guild_settings.get(player.guild.id)).stay_24_7:
            return
        channel = player.channel
        _log.info("Bot %d leaves guild %d after %.0fs idle", self.bot_id, player.guild.id, timeout)
        text_channel = player.guild.get_channel(player.text_channel_id or 0)
        t = Tr(await self.languages.for_guild(player.guild))
        await self.leave(player)
        if isinstance(text_channel, discord.abc.Messageable) and channel is not None:
            with contextlib.suppress(discord.HTTPException):
                await text_channel.send(t("idle.left", channel=channel.mention))


def _gid(player: ChorusPlayer) -> int | None:
    return player.guild.id if player.guild is not None else None


_SEARCH_PREFIX = re.compile(r"^[a-z]{2,12}search:", re.IGNORECASE)
# Links that play through LavaSrc (mirrored to a playable source): hosts -> the service's name.
_MIRRORED = {
    "open.spotify.com": "Spotify",
    "spotify.link": "Spotify",
    "music.apple.com": "Apple Music",
    "deezer.com": "Deezer",
    "www.deezer.com": "Deezer",
    "deezer.page.link": "Deezer",
    "link.deezer.com": "Deezer",
}


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _mirrored_service(text: str) -> str | None:
    if not _is_url(text):
        return None
    host = text.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower()
    return _MIRRORED.get(host)
