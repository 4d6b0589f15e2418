"""The Lavalink nodes of one bot. The only module that touches wavelink's process-global Pool.

wavelink keeps every node of the process in one `Pool`; a node's websocket is logged in as
ONE bot (`User-Id`). So each bot gets its own `Node` per Lavalink server, identified
`"{bot_id}:{server}"`, and its players are pinned to those nodes (see `ChorusPlayer`).
Stopping a bot ejects only its nodes (never `Pool.close()`, which would close every bot's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aiohttp
import discord
import wavelink

from app.music.config import LavalinkNodeSpec

_log = logging.getLogger(__name__)


class BotNodes:
    def __init__(
        self, client: discord.Client, specs: Sequence[LavalinkNodeSpec], *, health_interval: float = 5.0
    ) -> None:
        self._client = client
        self._specs = list(specs)
        self._health_interval = health_interval
        self._session: aiohttp.ClientSession | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.nodes: list[wavelink.Node] = []

    @property
    def configured(self) -> bool:
        return bool(self._specs)

    async def connect(self) -> None:
        """Create and connect this bot's nodes. Returns at once; nodes become ready in the background."""
        if not self._specs or self._client.user is None:
            return
        # wavelink never closes a session it was given, nor one it created: we own this one.
        self._session = aiohttp.ClientSession()
        bot_id = self._client.user.id
        self.nodes = [
            wavelink.Node(
                identifier=f"{bot_id}:{spec.name}",
                uri=spec.uri,
                password=spec.password,
                client=self._client,
                session=self._session,
                retries=None,  # keep reconnecting: a Lavalink restart must not need a bot restart
                inactive_player_timeout=None,  # idleness is ours (MusicService), one mechanism
            )
            for spec in self._specs
        ]
        await wavelink.Pool.connect(nodes=self.nodes, client=self._client)
        self._watchdog = asyncio.create_task(self._watch(), name=f"lavalink-watchdog-{bot_id}")

    def healthy(self, *, exclude: wavelink.Node | None = None) -> list[wavelink.Node]:
        return [
            node
            for node in self.nodes
            if node.status is wavelink.NodeStatus.CONNECTED
            and _socket_alive(node)
            and (exclude is None or node.identifier != exclude.identifier)
        ]

    def best(self, *, exclude: wavelink.Node | None = None) -> wavelink.Node | None:
        """The least-loaded healthy node of this bot."""
        return min(self.healthy(exclude=exclude), key=lambda node: len(node.players), default=None)

    def owns(self, node: wavelink.Node) -> bool:
        return any(node.identifier == own.identifier for own in self.nodes)

    def is_healthy(self, node: wavelink.Node) -> bool:
        return any(node.identifier == h.identifier for h in self.healthy())

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for node in self.nodes:
            try:
                await node.close(eject=True)
            except Exception:
                _log.exception("Closing Lavalink node %s failed", node.identifier)
        self.nodes = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _watch(self) -> None:
        """wavelink 3.5 misses a clean close from Lavalink (its reader dies on the CLOSE frame and
        the node stays CONNECTED forever). Spot such nodes and make wavelink reconnect them."""
        while True:
            await asyncio.sleep(self._health_interval)
            for node in self.nodes:
                if node.status is wavelink.NodeStatus.CONNECTED and not _socket_alive(node):
                    _log.warning(
                        "Lavalink node %s lost its websocket unnoticed; reconnecting", node.identifier
                    )
                    websocket = node._websocket  # pyright: ignore[reportPrivateUsage]  # see docstring
                    if websocket is not None:
                        # connect() dispatches node_disconnected first, then retries with backoff.
                        asyncio.create_task(websocket.connect())  # noqa: RUF006  # wavelink keeps the task


def _socket_alive(node: wavelink.Node) -> bool:
    websocket = node._websocket  # pyright: ignore[reportPrivateUsage]  # wavelink has no public check
    if websocket is None or not websocket.is_connected():
        return False
    task = websocket.keep_alive_task
    return task is None or not task.done()


async def fetch_tracks(node: wavelink.Node, query: str) -> wavelink.Search:
    """Load tracks through one specific node of the bot (never the process-wide pool's choice)."""
    return await wavelink.Pool.fetch_tracks(query, node=node)
