"""Recent fleet events for the dashboard: bots failing and recovering, guilds joined and left,
Lavalink servers going down and coming back. An in-memory ring buffer per worker: the latest
`capacity` events, gone on restart (logs and metrics are the durable record).

The runner reports its state changes and hands each new client over to be watched; guild and
Lavalink events come from that client's own dispatches. A Lavalink server is one event for the
whole worker, not one per bot: it is "down" when the last of this worker's bots loses its
connection to it and "up" when the first one has one again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import discord
import wavelink
from discord.ext import commands

from app.bots.status import BotState
from app.db.models import utcnow

__all__ = ("FleetEvent", "FleetEventKind", "FleetEvents")


class FleetEventKind(StrEnum):
    BOT_FAILED = "bot_failed"
    BOT_DISCONNECTED = "bot_disconnected"
    BOT_RECOVERED = "bot_recovered"
    GUILD_JOINED = "guild_joined"
    GUILD_LEFT = "guild_left"
    NODE_DOWN = "node_down"
    NODE_UP = "node_up"


@dataclass(frozen=True, slots=True)
class FleetEvent:
    at: datetime
    kind: FleetEventKind
    text: str
    bot_id: int | None = None


class FleetEvents:
    def __init__(self, capacity: int = 200) -> None:
        self._events: deque[FleetEvent] = deque(maxlen=capacity)
        self._down: set[int] = set()  # bots that failed, or lost a session they had
        self._connected: dict[str, set[int]] = {}  # Lavalink server -> bots connected to it

    def recent(self, limit: int | None = None) -> list[FleetEvent]:
        """Newest first."""
        events = list(reversed(self._events))
        return events if limit is None else events[:limit]

    def add(self, kind: FleetEventKind, text: str, *, bot_id: int | None = None) -> None:
        self._events.append(FleetEvent(at=utcnow(), kind=kind, text=text, bot_id=bot_id))

    # -- bots ---------------------------------------------------------------------------------

    def state_changed(self, bot_id: int, name: str, old: BotState, new: BotState, reason: str | None) -> None:
        """Called by a runner on each change of state. A first READY is not news; a READY after a
        failure or a lost session is a recovery."""
        if new is BotState.FAILED:
            self._down.add(bot_id)
            self.add(
                FleetEventKind.BOT_FAILED, f"{name} failed: {reason or 'no reason given'}", bot_id=bot_id
            )
        elif new is BotState.RECONNECTING and old is BotState.READY:
            self._down.add(bot_id)
            self.add(FleetEventKind.BOT_DISCONNECTED, f"{name} lost its gateway session; reconnecting",
                     bot_id=bot_id)  # fmt: skip
        elif new is BotState.READY and bot_id in self._down:
            self._down.discard(bot_id)
            self.add(FleetEventKind.BOT_RECOVERED, f"{name} is ready again", bot_id=bot_id)
        if new in (BotState.FAILED, BotState.STOPPED):
            self._forget_connections(bot_id)

    # -- a client's own events ------------------------------------------------------------------

    def watch(self, client: commands.Bot, *, bot_id: int, name: str) -> None:
        """Follow one (new) client of a bot: its guild joins and leaves, its Lavalink connections.
        A new client has no Lavalink connection yet."""
        self._forget_connections(bot_id)

        async def joined(guild: discord.Guild) -> None:
            self.add(FleetEventKind.GUILD_JOINED, f"{name} joined {guild.name}", bot_id=bot_id)

        async def left(guild: discord.Guild) -> None:
            self.add(FleetEventKind.GUILD_LEFT, f"{name} left {guild.name}", bot_id=bot_id)

        async def node_ready(payload: wavelink.NodeReadyEventPayload) -> None:
            self._node_changed(bot_id, payload.node, up=True)

        async def node_lost(payload: wavelink.NodeDisconnectedEventPayload) -> None:
            self._node_changed(bot_id, payload.node, up=False)

        client.add_listener(joined, "on_guild_join")
        client.add_listener(left, "on_guild_remove")
        client.add_listener(node_ready, "on_wavelink_node_ready")
        client.add_listener(node_lost, "on_wavelink_node_disconnected")

    def _node_changed(self, bot_id: int, node: wavelink.Node, *, up: bool) -> None:
        server = node.identifier.partition(":")[2] or node.identifier  # "{bot_id}:{server}"
        bots = self._connected.setdefault(server, set())
        was_up = bool(bots)
        if up:
            bots.add(bot_id)
        else:
            bots.discard(bot_id)
        if up and not was_up:
            self.add(FleetEventKind.NODE_UP, f"Lavalink {server} is up")
        elif was_up and not bots:
            self.add(FleetEventKind.NODE_DOWN, f"Lavalink {server} is down for every bot of this worker")

    def _forget_connections(self, bot_id: int) -> None:
        for bots in self._connected.values():
            bots.discard(bot_id)
