"""The discord.py client of one bot: the plain client, or the sharded one for a bot in more guilds
than one gateway connection may hold (see `app.bots.sharding`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from app.bots.commands import load_extensions
from app.bots.heartbeat import install_honest_heartbeat, stop_heartbeats
from app.bots.tree import ChorusTree
from app.music.fleet import MusicFleet
from app.music.scheduler import MusicScheduler
from app.music.service import MusicConfig, MusicService
from app.shutdown import run_bounded

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

# (shard id or None for an unsharded client, initial): paces and counts every IDENTIFY.
IdentifyHook = Callable[[int | None, bool], Awaitable[None]]


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
        scheduler: MusicScheduler,
        manager: BotManager | None = None,
        shard_count: int | None = None,
    ) -> None:
        install_honest_heartbeat()  # before any gateway connection: honest `latency`
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
            shard_count=shard_count,
        )
        self.expected_client_id = client_id
        self.display_name = name
        self._before_identify = before_identify
        self._handshake_socket: aiohttp.ClientWebSocketResponse | None = None
        self.http.ws_connect = self._remember_socket(self.http.ws_connect)  # type: ignore[method-assign]  # see below
        self._manager = manager
        if manager is not None:
            # Raw interaction payloads kept in context, for forwarding across workers.
            manager.forwarder.install(self)
            tree = self.tree
            if isinstance(tree, ChorusTree):
                tree.forwarder = manager.forwarder
        # Built now (nothing starts before `setup_hook`), so the cogs are built with it.
        self.music = MusicService(self, music_config, bot_id=client_id, fleet=fleet, scheduler=scheduler)

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
        stop_heartbeats(self._connection, socket=socket)
        if not socket.closed:
            await socket.close()

    def gateway_closed(self) -> bool:
        """No gateway socket of this client (of any shard) is open: a hand-over releases the
        bot's lease only then, so its next owner can never open a second session beside this one."""
        return not self.gateway_sockets()

    async def force_close_gateway(self) -> None:
        """Close whatever gateway socket (of any shard) a bounded `close()` left open (aiohttp
        aborts the connection when its closing handshake is cut short)."""
        for socket in self.gateway_sockets():
            what = f"Closing the gateway of bot {self.expected_client_id}"
            await run_bounded(socket.close(), 2.0, what=what)

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
        try:
            await super().close()
        finally:
            # Also the heartbeat of a handshake cut short, which `super().close()` does not know.
            stop_heartbeats(self._connection)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # The runner paces (Discord's spacing, backoff after short sessions) and counts (or
        # refuses) every IDENTIFY, of every shard; discord.py's default hook would sleep a fixed
        # 5 s instead.
        await self._before_identify(shard_id, initial)

    @property
    def user_count(self) -> int:
        return sum(guild.member_count or 0 for guild in self.guilds)

    @property
    def shards_total(self) -> int:
        """Gateway connections this client runs (1 unless sharded)."""
        return 1

    def gateway_sockets(self) -> list[aiohttp.ClientWebSocketResponse]:
        """Every gateway socket this client has opened and not yet seen closed (each shard's, for
        a sharded client): what must be closed before another process may run the bot."""
        ws = self.ws  # None before connect()
        sockets = [self._handshake_socket, ws.socket if ws is not None else None]
        return [socket for socket in dict.fromkeys(sockets) if socket is not None and not socket.closed]

    @property
    def all_shards_up(self) -> bool:
        """Every gateway connection has a session (an unsharded client: its events say so)."""
        return True


class ShardedMusicBotClient(MusicBotClient, commands.AutoShardedBot):
    """A bot in more guilds than one gateway connection may hold: discord.py's AutoShardedBot, every
    shard in this process (the unit a worker runs stays the bot). `shard_count` None: discord.py
    asks Discord (`GET /gateway/bot`) when it connects."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._shards_up: set[int] = set()
        self._identify_refusal: BaseException | None = None
        self._logging_in = False

    @property
    def shards_total(self) -> int:
        return self.shard_count or 1

    @property
    def all_shards_up(self) -> bool:
        return self.shard_count is not None and self._shards_up >= set(range(self.shard_count))

    def gateway_sockets(self) -> list[aiohttp.ClientWebSocketResponse]:
        # `self.ws` is never set on a sharded client: each shard has its own websocket.
        sockets = [self._handshake_socket]
        sockets += [self._get_websocket(shard_id=shard_id).socket for shard_id in self.shards]
        return [socket for socket in dict.fromkeys(sockets) if socket is not None and not socket.closed]

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        # Kept up to date before any listener runs: the runner's `on_resumed` and
        # `on_shard_ready` read it to tell "every shard is back" from "one shard is back".
        if event_name in ("shard_ready", "shard_resumed"):
            self._shards_up.add(args[0])
        elif event_name == "shard_disconnect":
            self._shards_up.discard(args[0])
        super().dispatch(event_name, *args, **kwargs)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        try:
            await super().before_identify_hook(shard_id, initial=initial)
        except Exception as exc:
            self._identify_refusal = exc
            raise

    async def launch_shard(self, gateway: yarl.URL, shard_id: int, *, initial: bool = False) -> None:
        # discord.py retries a shard's first connection on any error, our refusals included;
        # its retry comes back here, and a refusal ends the launch (the runner decides what next).
        if self._identify_refusal is not None:
            raise self._identify_refusal
        await super().launch_shard(gateway, shard_id, initial=initial)

    async def login(self, token: str) -> None:
        self._logging_in = True
        await super().login(token)

    async def close(self) -> None:
        for ready_wait in self._connection._ready_tasks.values():  # pyright: ignore[reportPrivateUsage]  # see MusicBotClient.close
            ready_wait.cancel()
        if not self._logging_in:
            # AutoShardedClient.close needs what login() creates; before it there is only HTTP.
            await self.http.close()
            return
        await super().close()
