"""The discord.py client of one bot."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.ext import commands
from discord.gateway import KeepAliveHandler

from app.bots.commands import load_extensions
from app.bots.tree import ChorusTree
from app.music.fleet import MusicFleet
from app.music.service import MusicConfig, MusicService
from app.shutdown import run_bounded

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

IdentifyHook = Callable[[bool], Awaitable[None]]


def bot_intents() -> discord.Intents:
    """`guilds` and `voice_states` only: non-privileged, all a slash-command music bot needs."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


class MusicBotClient(commands.Bot):
    """One bot of the fleet. Slash commands only: no message content, no member or message cache."""

    def __init__(
        self,
        *,
        client_id: int,
        name: str,
        guild_ready_timeout: float,
        before_identify: IdentifyHook,
        music_config: MusicConfig,
        fleet: MusicFleet,
        manager: BotManager | None = None,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            tree_cls=ChorusTree,
            intents=bot_intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            chunk_guilds_at_startup=False,
            guild_ready_timeout=guild_ready_timeout,
            enable_debug_events=False,
        )
        self.expected_client_id = client_id
        self.display_name = name
        self._before_identify = before_identify
        self._handshake_socket: aiohttp.ClientWebSocketResponse | None = None
        self.http.ws_connect = self._remember_socket(self.http.ws_connect)  # type: ignore[method-assign]  # see below
        self._manager = manager
        # Built now (nothing starts before `setup_hook`), so the cogs are built with it.
        self.music = MusicService(self, music_config, bot_id=client_id, fleet=fleet)

    def _remember_socket(
        self, connect: Callable[..., Awaitable[aiohttp.ClientWebSocketResponse]]
    ) -> Callable[..., Awaitable[aiohttp.ClientWebSocketResponse]]:
        """Keep the newest gateway socket: discord.py only closes sockets whose handshake finished."""

        async def ws_connect(url: str, *, compress: int = 0) -> aiohttp.ClientWebSocketResponse:
            self._handshake_socket = await connect(url, compress=compress)
            return self._handshake_socket

        return ws_connect

    async def abandon_handshake(self) -> None:
        """Close a gateway socket whose IDENTIFY we refused (the identify budget).

        The refusal is raised from `before_identify_hook`, in the middle of discord.py's handshake:
        the socket is open and its heartbeat thread running, but `self.ws` still points at the
        previous one, so `close()` would miss both.
        """
        socket = self._handshake_socket
        if socket is None:
            return
        for thread in threading.enumerate():
            if isinstance(thread, KeepAliveHandler) and thread.ws.socket is socket:
                thread.stop()
        if not socket.closed:
            await socket.close()

    async def setup_hook(self) -> None:
        # Commands are registered in the local tree only; syncing them with Discord is the
        # operator's deliberate `chorus deploy-commands`, never automatic at startup.
        await load_extensions(self, music=self.music, manager=self._manager)
        await self.music.start()

    async def close(self) -> None:
        # A READY still waiting for its guilds would dispatch into the closed client (discord.py
        # does not cancel it): "Task exception was never retrieved".
        ready_wait = self._connection._ready_task  # pyright: ignore[reportPrivateUsage]  # see above
        if ready_wait is not None:
            ready_wait.cancel()
        if not self.is_closed():
            await run_bounded(
                self.music.close(), 10.0, what=f"Closing the music of bot {self.expected_client_id}"
            )
        await super().close()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # The runner paces (Discord's spacing, backoff after short sessions) and counts (or
        # refuses) every IDENTIFY; discord.py's default hook would sleep a fixed 5 s instead.
        await self._before_identify(initial)

    @property
    def user_count(self) -> int:
        return sum(guild.member_count or 0 for guild in self.guilds)
