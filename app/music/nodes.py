"""The Lavalink nodes of one bot, kept connected in the background. The only module that touches
wavelink's websocket and its process-global `Pool`.

- **One bot, its own nodes.** A node's websocket is logged in as ONE bot (`User-Id`), so each
  bot gets its own `Node` per Lavalink server, identified `"{bot_id}:{server}"`, and its players
  are pinned to those nodes (see `ChorusPlayer`).
- **Never in the Pool.** wavelink's `Pool` is a process-wide registry; nothing we use needs a
  node to be in it (players get `nodes=`, searches `fetch_tracks(node=...)`), and a node left in
  it by a stop that was cut short would make the bot's next client find its identifier taken.
  So our nodes are never registered there: `Pool.fetch_tracks` is the only thing used from it.
- **Lavalink never gates Discord.** `start()` returns at once; a supervised task per node
  connects it. wavelink's own `Websocket.connect()` retries forever in a task nobody holds
  (`Node.close()` cannot stop it) and reconnects from its reader in another untracked task; here
  each connection attempt is made by the node's connecting task, so cancelling it is the end of
  that node: a stopped bot makes no further connection attempt.
- **Nothing polls a connected node.** The connecting task ends once the websocket is open; the
  websocket's reader (wavelink's, which ends whenever the connection does: close frame, error,
  aiohttp's heartbeat timeout, see `HEARTBEAT`) starts the next connecting task from its
  done-callback. A worker of 1,000 bots with healthy nodes therefore has no Lavalink timer of ours;
  aiohttp's heartbeat pings a connection only after `HEARTBEAT` seconds without a message.
- **Backoff, logged once per episode.** A node that is down, or whose websocket keeps dying (a
  malformed event kills wavelink's reader; a Lavalink-compatible server may lack a route), is
  retried with exponential backoff up to `reconnect_max_delay`; the first problem of an episode
  is a warning, the recovery an info line, repeats are debug. An episode ends once a
  connection has held for `STABLE_AFTER` seconds.
- **No Lavalink-side resuming.** `resume_timeout=0`: wavelink then never sends `PATCH
  /v4/sessions/{id}` (servers without that route made it loop); our snapshots resume players.
  The previous session id is still offered on reconnect, so a server that kept the session
  resumes it (`NodeReadyEventPayload.resumed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
import discord
import wavelink
from wavelink.websocket import Websocket

from app.backoff import Backoff
from app.music.config import LavalinkNodeSpec
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds for one websocket handshake
# aiohttp's websocket heartbeat for each node connection (wavelink's `Node(heartbeat=)`, 15 s by
# default): after this many seconds without a message from Lavalink it sends a ping, and a pong
# missing for half as long ends the connection (the reader ends: reconnect and failover). Only
# a *silent* Lavalink needs it (host down, network cut, a frozen JVM); a Lavalink that exits,
# crashes or restarts closes the TCP connection and is noticed at once. Lavalink sends `stats`
# every 60 s on each session, so at 30 s a healthy connection is pinged about once a minute
# (three times at 15 s): with one connection per bot and server, that is most of an idle
# fleet's Lavalink traffic. A silent Lavalink is given up after at most 45 s.
HEARTBEAT = 30.0
STABLE_AFTER = 60.0  # seconds a connection must hold to end an episode (and reset the backoff)
FIRST_RETRY_DELAY = 0.5  # seconds; doubles up to the node's reconnect_max_delay


class _NodeSocket(Websocket):
    """wavelink's websocket (its reader parses and dispatches every op), minus its reconnect loop.

    `open()` makes exactly one connection attempt. wavelink's reader calls `connect()` from a task
    of its own when Lavalink closes the socket; here that does nothing: the reader ending is the
    node's supervisor's signal to reconnect, with its backoff.
    """

    stats: wavelink.StatsEventPayload | None = None  # Lavalink's latest `stats` op on this connection
    episode: _Episode | None = None  # told when Lavalink's `ready` op arrives

    async def open(self) -> None:
        node = self.node
        node._status = wavelink.NodeStatus.CONNECTING  # pyright: ignore[reportPrivateUsage]  # see class doc
        session = node._session  # pyright: ignore[reportPrivateUsage]  # the bot's own session
        self.socket = await session.ws_connect(
            f"{node.uri}/v4/websocket", heartbeat=node.heartbeat, headers=self.headers
        )
        self.keep_alive_task = asyncio.create_task(
            self.keep_alive(), name=f"lavalink-reader-{node.identifier}"
        )

    async def connect(self) -> None:
        """Called by wavelink's reader on a close frame: reconnecting is the supervisor's job."""
        return

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        # wavelink passes Lavalink's `stats` op on without saying which node sent it: keep the
        # latest here, per connection (/metrics reads players and load from it).
        if event == "stats_update" and args and isinstance(args[0], wavelink.StatsEventPayload):
            self.stats = args[0]
        elif event == "node_ready" and self.episode is not None:
            self.episode.up(self.node.session_id)
        super().dispatch(event, *args, **kwargs)

    async def shut(self) -> None:
        """Stop the reader and close the socket, without wavelink's events or player cleanup."""
        reader = self.keep_alive_task
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        elif reader is not None and not reader.cancelled():
            reader.exception()  # a reader that died unobserved is not "never retrieved" noise
        if self.socket is not None and not self.socket.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with asyncio.timeout(2.0):  # a stalled server must not hold a stop
                    await self.socket.close()


class NodeReport(NamedTuple):
    """One bot's connection to one Lavalink server, as /metrics and the dashboard see it."""

    server: str  # the name in LAVALINK_NODES
    connected: bool
    stats: wavelink.StatsEventPayload | None  # the server's latest `stats` op, while connected


class _Episode:
    """Logs one node's trouble once per episode: the first problem, then the recovery."""

    def __init__(self, identifier: str) -> None:
        self._identifier = identifier
        self.problem: str | None = None
        self._announced_up = False
        self.ever_up = False

    def failed(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
            self._announced_up = False
            _log.warning(
                "Lavalink node %s: %s; reconnecting in the background with backoff", self._identifier, problem
            )
        else:
            _log.debug("Lavalink node %s: %s (same episode)", self._identifier, problem)

    def up(self, session_id: str | None) -> None:
        if self._announced_up:
            return
        self._announced_up = True
        if self.problem is not None:
            _log.info("Lavalink node %s is connected again (session %s)", self._identifier, session_id)
        elif not self.ever_up:
            _log.info("Lavalink node %s connected (session %s)", self._identifier, session_id)
        self.ever_up = True

    def stable(self) -> None:
        self.problem = None


@dataclass(slots=True)
class _Link:
    """One node's connection history: what its episodes and backoff remember across connections."""

    episode: _Episode
    backoff: Backoff
    opened: float = 0.0  # loop time the current connection opened


class BotNodes:
    def __init__(
        self,
        client: discord.Client,
        specs: Sequence[LavalinkNodeSpec],
        *,
        bot_id: int,
        reconnect_max_delay: float = 10.0,
    ) -> None:
        self._client = client
        self._specs = list(specs)
        self._bot_id = bot_id
        self._reconnect_max_delay = reconnect_max_delay
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        # node identifier -> its connecting task, only while the node is not connected
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.nodes: list[wavelink.Node] = []

    @property
    def configured(self) -> bool:
        return bool(self._specs)

    def total_count(self) -> int:
        """How many Lavalink nodes this bot is configured with (`LAVALINK_NODES`)."""
        return len(self._specs)

    def connected_count(self) -> int:
        """How many of this bot's nodes are connected and usable right now (cheap: no I/O, no
        list: /health asks every bot of the worker)."""
        return sum(1 for node in self.nodes if _usable(node))

    def start(self) -> None:
        """Create this bot's nodes and connect them in the background. Returns at once: whether
        Lavalink is up or not never delays the bot's Discord session."""
        if not self._specs or self._closed or self._started:
            return
        self._started = True
        # wavelink never closes a session it was given: we own this one.
        self._session = aiohttp.ClientSession()
        self.nodes = [
            wavelink.Node(
                identifier=f"{self._bot_id}:{spec.name}",
                uri=spec.uri,
                password=spec.password,
                client=self._client,
                session=self._session,
                heartbeat=HEARTBEAT,
                resume_timeout=0,  # our snapshots resume players; see the module doc
                inactive_player_timeout=None,  # idleness is ours (MusicService), one mechanism
            )
            for spec in self._specs
        ]
        for node in self.nodes:
            link = _Link(
                _Episode(node.identifier),
                Backoff(initial=min(FIRST_RETRY_DELAY, self._reconnect_max_delay),
                        maximum=self._reconnect_max_delay),
            )  # fmt: skip
            self._connect_in_background(node, link, self._connect(node, link))

    def stop_connecting(self) -> None:
        """Cancel every connection attempt and reconnect, now (synchronously): called first
        when the bot stops, so even a stop cut short by its timeout leaves nothing retrying."""
        self._closed = True
        for task in self._tasks.values():
            task.cancel()

    async def close(self) -> None:
        self.stop_connecting()
        await cancel_bounded(
            list(self._tasks.values()), 2.0, what=f"Lavalink connections of bot {self._bot_id}"
        )
        self._tasks = {}
        for node in self.nodes:
            socket = node._websocket  # pyright: ignore[reportPrivateUsage]  # ours: a _NodeSocket
            if isinstance(socket, _NodeSocket):
                await socket.shut()
            node._websocket = None  # pyright: ignore[reportPrivateUsage]
            node._status = wavelink.NodeStatus.DISCONNECTED  # pyright: ignore[reportPrivateUsage]
            node._players = {}  # pyright: ignore[reportPrivateUsage]  # they left voice before this
        self.nodes = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def healthy(self, *, exclude: wavelink.Node | None = None) -> list[wavelink.Node]:
        return [
            node
            for node in self.nodes
            if _usable(node) and (exclude is None or node.identifier != exclude.identifier)
        ]

    def best(self, *, exclude: wavelink.Node | None = None) -> wavelink.Node | None:
        """The least-loaded healthy node of this bot."""
        return min(self.healthy(exclude=exclude), key=lambda node: len(node.players), default=None)

    def reports(self) -> list[NodeReport]:
        """Each of this bot's connections, by Lavalink server: up or not, and the server's latest
        stats while up. Cheap (no I/O, no allocation but the tuples): /metrics asks every bot."""
        reports: list[NodeReport] = []
        connected = wavelink.NodeStatus.CONNECTED
        for spec, node in zip(self._specs, self.nodes, strict=False):
            up = node._status is connected and _socket_alive(node)  # pyright: ignore[reportPrivateUsage]  # what .status reads
            socket = node._websocket  # pyright: ignore[reportPrivateUsage]  # ours: a _NodeSocket
            reports.append(
                NodeReport(spec.name, up, socket.stats if up and isinstance(socket, _NodeSocket) else None)
            )
        return reports

    def owns(self, node: wavelink.Node) -> bool:
        return any(node is own for own in self.nodes)

    def is_healthy(self, node: wavelink.Node) -> bool:
        return any(node is h for h in self.healthy())

    # -- supervision of one node ----------------------------------------------------------------

    def _connect_in_background(
        self, node: wavelink.Node, link: _Link, work: Coroutine[Any, Any, None]
    ) -> None:
        task = asyncio.create_task(work, name=f"lavalink-{node.identifier}")
        self._tasks[node.identifier] = task
        task.add_done_callback(functools.partial(self._connecting_done, node.identifier))

    def _connecting_done(self, identifier: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(identifier) is task:  # connected (or stopped): no task while up
            del self._tasks[identifier]

    async def _connect(self, node: wavelink.Node, link: _Link) -> None:
        """Connect `node`, retrying with backoff, and return once its websocket is open (its
        reader takes over from there). Any unexpected error is logged and retried, never fatal
        to the bot; cancelled when the bot stops."""
        loop = asyncio.get_running_loop()
        while not self._closed:
            socket = _NodeSocket(node=node)
            socket.episode = link.episode
            node._websocket = socket  # pyright: ignore[reportPrivateUsage]  # wavelink reads it there
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await socket.open()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                node._status = wavelink.NodeStatus.DISCONNECTED  # pyright: ignore[reportPrivateUsage]
                link.episode.failed(f"cannot connect to {node.uri} ({_describe(exc)})")
                await asyncio.sleep(link.backoff.next_delay())
                continue
            except asyncio.CancelledError:
                await socket.shut()
                raise
            except Exception as exc:  # a bug or an odd server: never the end of the node
                if link.episode.problem is None:
                    _log.exception("Lavalink node %s: unexpected error", node.identifier)
                await socket.shut()
                link.episode.failed(f"unexpected error ({_describe(exc)})")
                await asyncio.sleep(link.backoff.next_delay())
                continue
            link.opened = loop.time()
            reader = socket.keep_alive_task
            assert reader is not None
            reader.add_done_callback(functools.partial(self._reader_ended, node, link, socket))
            return

    def _reader_ended(self, node: wavelink.Node, link: _Link, socket: _NodeSocket, _: object) -> None:
        """The connection is over (the reader ends with it): reconnect, unless the bot stops."""
        if self._closed or node._websocket is not socket:  # pyright: ignore[reportPrivateUsage]
            return
        reader = socket.keep_alive_task
        assert reader is not None and reader.done()
        error = None if reader.cancelled() else reader.exception()  # retrieved: it is not news
        if not socket.is_connected():
            # wavelink's reader also dies on a close frame it does not expect: a close is a close.
            code = socket.socket.close_code if socket.socket is not None else None
            problem = f"Lavalink closed the websocket (code {code})"
        else:
            reason = _describe(error) if error is not None else "it stopped"
            problem = f"its websocket reader died ({reason})"
        self._connect_in_background(node, link, self._reconnect(node, link, socket, problem))

    async def _reconnect(self, node: wavelink.Node, link: _Link, socket: _NodeSocket, problem: str) -> None:
        try:
            await self._lost(node, socket)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("Lavalink node %s: cleaning up a lost connection failed", node.identifier)
        if asyncio.get_running_loop().time() - link.opened >= STABLE_AFTER:
            link.backoff.reset()
            link.episode.stable()
        link.episode.failed(problem)
        await asyncio.sleep(link.backoff.next_delay())
        await self._connect(node, link)

    async def _lost(self, node: wavelink.Node, socket: _NodeSocket) -> None:
        """Close what is left of the connection and tell the bot's music (players fail over).

        The node keeps its session id (offered on reconnect, so a server that kept the session
        resumes it) and its players (they still route events after such a resume; otherwise
        the bot's music re-creates them when the node is ready again).
        """
        was_connected = node.status is wavelink.NodeStatus.CONNECTED
        await socket.shut()
        node._status = wavelink.NodeStatus.DISCONNECTED  # pyright: ignore[reportPrivateUsage]
        if was_connected:
            payload = wavelink.NodeDisconnectedEventPayload(node=node)
            self._client.dispatch("wavelink_node_disconnected", payload)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _usable(node: wavelink.Node) -> bool:
    """Connected, with its websocket open and its keepalive running."""
    return node.status is wavelink.NodeStatus.CONNECTED and _socket_alive(node)


def _socket_alive(node: wavelink.Node) -> bool:
    websocket = node._websocket  # pyright: ignore[reportPrivateUsage]  # wavelink has no public check
    if websocket is None or not websocket.is_connected():
        return False
    task = websocket.keep_alive_task
    return task is None or not task.done()


async def fetch_tracks(node: wavelink.Node, query: str) -> wavelink.Search:
    """Load tracks through one specific node of the bot (never the process-wide pool's choice)."""
    return await wavelink.Pool.fetch_tracks(query, node=node)
