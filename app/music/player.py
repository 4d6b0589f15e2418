"""`ChorusPlayer`: one bot's music in one guild, pinned to that bot's Lavalink nodes."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import wavelink
from discord.utils import MISSING

from app.music.errors import AudioBackendUnavailable

if TYPE_CHECKING:
    from app.music.service import MusicService

HISTORY_SIZE = 50  # played tracks each player remembers (/history, /previous)

# What a request to Lavalink raises when the connection fails (rather than Lavalink answering an
# error): wavelink lets these through as they are.
BACKEND_ERRORS = (aiohttp.ClientError, wavelink.NodeException, OSError, TimeoutError)


@contextlib.contextmanager
def backend_call() -> Iterator[None]:
    """A connection failure on the way to Lavalink is the user-facing AudioBackendUnavailable."""
    try:
        yield
    except BACKEND_ERRORS as exc:
        raise AudioBackendUnavailable() from exc


class ChorusPlayer(wavelink.Player):
    """A wavelink player that never lands on another bot's node.

    Built by `MusicService.join` through `channel.connect(cls=service.player_factory)`: pinned to
    the least-loaded healthy node of its own bot (refused with AudioBackendUnavailable when there
    is none), never wavelink's default of any node in the process. It knows its service, so a
    command received by another bot of the fleet still reaches the right settings and rules.
    """

    def __init__(
        self,
        client: discord.Client = MISSING,
        channel: discord.abc.Connectable = MISSING,
        *,
        service: MusicService,
        nodes: list[wavelink.Node] | None = None,
    ) -> None:
        if nodes is None:
            node = service.nodes.best()
            if node is None:
                raise AudioBackendUnavailable()
            nodes = [node]
        super().__init__(client, channel, nodes=nodes)
        self.service = service
        self.text_channel_id: int | None = None
        self.skip_votes: set[int] = set()
        self.filter_preset: str = "reset"
        self.idle_since: float | None = time.monotonic()
        # Set when the player's node died and no other node could take it: where to resume.
        self.stranded_position: int | None = None
        # Played tracks, oldest first; the last one is the current track once it started.
        self.history: deque[wavelink.Playable] = deque(maxlen=HISTORY_SIZE)
        # The now-playing controller in the text channel: one message per player, edited.
        self.controller_message_id: int | None = None

    def record_played(self, track: wavelink.Playable) -> None:
        """Remember a track that started (a repeat of the same track, as in track loop, once)."""
        if self.history and self.history[-1].encoded == track.encoded:
            return
        self.history.append(track)

    @property
    def current_requester_id(self) -> int | None:
        return requester_id(self.current)

    def cleanup(self) -> None:
        """wavelink's end of the player (left voice, destroyed): its service forgets it too."""
        self.service.forget_player(self)
        super().cleanup()

    def reattach(self, guild: discord.Guild, channel: discord.VoiceChannel | discord.StageChannel) -> None:
        """After a re-identify discord.py rebuilt its guilds and forgot its voice clients while
        Lavalink kept playing: point the player at the new objects and register it again, so the
        voice events of the new session reach it."""
        self._guild = guild
        self.channel = channel
        self.client._connection._add_voice_client(guild.id, self)  # pyright: ignore[reportPrivateUsage]  # what channel.connect() does

    async def play(self, track: wavelink.Playable, **options: Any) -> wavelink.Playable:
        """wavelink undoes its bookkeeping when Lavalink answers an error, but not when the
        connection drops mid-request; here both leave the player as it was, and a drop is the
        user-facing AudioBackendUnavailable (like a failed search)."""
        saved = (self._current, self._original, self._previous, self._volume, self.queue._loaded)  # pyright: ignore[reportPrivateUsage]
        try:
            with backend_call():
                return await super().play(track, **options)
        except AudioBackendUnavailable:
            self._current, self._original, self._previous, self._volume, self.queue._loaded = saved  # pyright: ignore[reportPrivateUsage]
            raise

    async def pause(self, value: bool, /) -> None:
        with backend_call():
            await super().pause(value)

    async def seek(self, position: int = 0, /) -> None:
        with backend_call():
            await super().seek(position)

    async def set_volume(self, value: int = 100, /) -> None:
        with backend_call():
            await super().set_volume(value)

    async def set_filters(self, filters: wavelink.Filters | None = None, /, *, seek: bool = False) -> None:
        with backend_call():
            await super().set_filters(filters, seek=seek)

    async def skip(self, *, force: bool = True) -> wavelink.Playable | None:
        with backend_call():
            return await super().skip(force=force)

    async def relocate(self, node: wavelink.Node, *, position: int | None = None) -> None:
        """Move to `node` (or re-create on the same node after a Lavalink restart) and continue
        the current track from `position` (default: the player's own position).

        wavelink's `switch_node` refuses the same node and computes the position itself; a node
        that restarted lost the player, and a stranded player's clock kept running while it was
        down, so this does the same steps with an explicit position.
        """
        assert self.guild is not None
        start = int(position if position is not None else self.position)
        if node is not self.node:
            await self._destroy(with_invalidate=False)  # best effort on the old node
        else:
            self.node._players.pop(self.guild.id, None)  # pyright: ignore[reportPrivateUsage]
        self._node = node
        await self._dispatch_voice_update()
        if not self.connected:
            raise RuntimeError(f"voice could not be re-established on node {node.identifier}")
        node._players[self.guild.id] = self  # pyright: ignore[reportPrivateUsage]
        current = self.current
        if current is None:
            await self.set_filters(self.filters)
            await self.set_volume(self.volume)
            await self.pause(self.paused)
        else:
            await self.play(
                current,
                replace=True,
                start=start,
                volume=self.volume,
                filters=self.filters,
                paused=self.paused,
                add_history=False,
            )
        self.stranded_position = None


def requester_id(track: wavelink.Playable | None) -> int | None:
    if track is None:
        return None
    extras: dict[str, Any] = dict(track.extras)
    raw = extras.get("requester_id")
    return int(raw) if isinstance(raw, str | int) and str(raw).isdigit() else None


def requester_name(track: wavelink.Playable | None) -> str | None:
    if track is None:
        return None
    value = dict(track.extras).get("requester")
    return str(value) if value else None
