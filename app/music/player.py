"""`ChorusPlayer`: one bot's music in one guild, pinned to that bot's Lavalink nodes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord
import wavelink
from discord.utils import MISSING

from app.music.errors import AudioBackendUnavailable

if TYPE_CHECKING:
    from app.music.service import MusicService


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

    @property
    def current_requester_id(self) -> int | None:
        return requester_id(self.current)

    async def relocate(self, node: wavelink.Node, *, position: int | None = None) -> None:
        """Move to `node` (or re-create on the same node after a Lavalink restart) and continue
        the current track from `position` (default: the player's own position).

        wavelink's `switch_node` refuses the same node and computes the position itself; a node
        that restarted lost the player, and a stranded player's clock kept running while it was
        down, so this does the same steps with an explicit position.
        """
        assert self.guild is not None
        start = int(position if position is not None else self.position)
        if node.identifier != self.node.identifier:
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
