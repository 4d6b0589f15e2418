"""A fake Lavalink v4 server for tests.

It speaks enough of the real Lavalink v4 protocol (websocket + REST) for the *real* wavelink
``Node``/``Player`` code to run against it, on 127.0.0.1 only, with a controllable clock:

* websocket ``GET /v4/websocket`` (``Authorization``, ``User-Id``, ``Client-Name``, ``Session-Id``
  headers) -> ``ready`` op, ``stats`` ops, ``playerUpdate`` ops and ``event`` ops;
* REST: ``/version``, ``/v4/info``, ``/v4/stats``, ``/v4/loadtracks``, ``/v4/decodetrack``,
  ``/v4/decodetracks``, ``/v4/sessions/{sid}`` and ``/v4/sessions/{sid}/players[/{guildId}]``.

Tracks only exist once registered with :meth:`FakeLavalink.add_track` (or a playlist with
:meth:`FakeLavalink.add_playlist`).  Time only moves when :meth:`FakeLavalink.advance` is called
(or every real second with ``autoclock=True``).

Behaviour follows the Lavalink server source where it matters to a client:

* a PATCH with a track starts it (``TrackStartEvent`` + ``playerUpdate``); a playing track is first
  ended with reason ``replaced`` unless ``noReplace`` is true (then the PATCH is a no-op for the
  track); ``encoded: null`` stops the track (``stopped``); a new track un-pauses the player unless
  ``paused`` is given; ``endTime`` ends the track with reason ``finished``;
* a PATCH with ``voice`` must carry ``token``, ``endpoint``, ``sessionId`` *and* ``channelId``
  (Lavalink >= 4.2), otherwise 400;
* seeking without a track answers 500 (like Lavalink's "Can't seek when not playing anything");
* a session whose websocket closes is kept for ``timeout`` seconds if resuming was enabled via
  ``PATCH /v4/sessions/{sid}``; events meanwhile are queued and replayed on resume.

Fault controls (each off by default): :meth:`FakeLavalink.reserve_port` (known port, not listening
yet), ``session_patch=False`` (no ``PATCH /v4/sessions/{sid}``, like some Lavalink-compatible
servers), ``keep_sessions`` (every session resumable without asking), ``omit_plugin_info``
(events whose track lacks ``pluginInfo``), :meth:`FakeLavalink.send_raw`, ``refused_users``
(handshakes answered 503), :meth:`FakeLavalink.drop_next_play`, :meth:`FakeLavalink.stall_rest`;
``connection_attempts`` counts websocket handshakes per ``User-Id``.

Plugins (off by default, like a bare Lavalink): ``lyrics_plugin`` serves LavaLyrics' routes
(``GET /v4/lyrics?track=`` and ``GET /v4/sessions/{sid}/players/{guildId}/track/lyrics``: 200
with a lyrics object, 204 when :meth:`FakeLavalink.add_lyrics` has none for the track; without
the plugin both are 404 like any unknown route); ``lavasrc`` lets Spotify, Apple Music and
Deezer links resolve (their tracks are registered with ``source="spotify"`` etc.); without it
such links load ``empty``, as on a server without LavaSrc.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import logging
import re
import secrets
import socket
import string
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

__all__ = ("FakeLavalink", "FakePlayer", "FakeSession", "RecordedRequest")

_log = logging.getLogger(__name__)

Json = dict[str, Any]

HOST = "127.0.0.1"
VERSION = "4.2.2"
SEARCH_LIMIT = 10
STREAM_LENGTH = 9_223_372_036_854_775_807  # what Lavalink reports as the length of a live stream
_SEARCH_PREFIX = re.compile(r"^(?P<source>[a-z]+)search:(?P<query>.*)$", re.DOTALL)
_SESSION_ALPHABET = string.ascii_lowercase + string.digits
_ENCODED_MAGIC = "fakelavalink"
_BODY: web.RequestKey[Any] = web.RequestKey("fake_lavalink_json_body")
# Hosts of links that only LavaSrc resolves (mirrored to a playable source).
_LAVASRC_HOSTS = ("open.spotify.com", "music.apple.com", "www.deezer.com", "deezer.com")

_INFO: Json = {
    "version": {"semver": VERSION, "major": 4, "minor": 2, "patch": 2, "preRelease": None, "build": None},
    "buildTime": 1_735_689_600_000,
    "git": {
        "branch": "main",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "commitTime": 1_735_689_600_000,
    },
    "jvm": "21.0.5",
    "lavaplayer": "2.2.2",
    "sourceManagers": ["youtube", "soundcloud", "bandcamp", "twitch", "vimeo", "nico", "http", "local"],
    "filters": [
        "volume",
        "equalizer",
        "karaoke",
        "timescale",
        "tremolo",
        "vibrato",
        "distortion",
        "rotation",
        "channelMix",
        "lowPass",
    ],
    "plugins": [],
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parse_bool(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"true", "1", "yes"}


class _ApiError(Exception):
    """Raised by REST handlers; turned into a Lavalink-shaped JSON error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_response(status: int, message: str, path: str) -> web.Response:
    body: Json = {
        "timestamp": _now_ms(),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
    }
    return web.json_response(body, status=status)


@dataclass
class RecordedRequest:
    """One REST call received by the fake (websocket handshakes are not recorded here)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    session_id: str | None
    user_id: int | None
    status: int = 0  # filled in once answered


@dataclass(eq=False)
class FakePlayer:
    """The server-side state of one guild's player inside a session."""

    guild_id: int
    track: Json | None = None
    position_ms: int = 0
    paused: bool = False
    volume: int = 100
    filters: Json = field(default_factory=dict)
    voice: Json = field(default_factory=lambda: {"token": "", "endpoint": "", "sessionId": ""})
    end_time: int | None = None
    patches: list[Json] = field(default_factory=list)  # every PATCH body received, oldest first

    @property
    def history(self) -> list[Json]:
        """Alias of :attr:`patches`."""
        return self.patches

    @property
    def playing(self) -> bool:
        return self.track is not None and not self.paused

    @property
    def has_voice(self) -> bool:
        """Whether a complete voice state (token, endpoint, sessionId) was given."""
        return all(self.voice.get(key) for key in ("token", "endpoint", "sessionId"))

    @property
    def length_ms(self) -> int | None:
        """The point at which the current track ends (``endTime`` or its length); ``None`` for streams."""
        if self.track is None or self.track["info"]["isStream"]:
            return None
        length: int = self.track["info"]["length"]
        return min(length, self.end_time) if self.end_time else length

    def track_json(self) -> Json | None:
        if self.track is None:
            return None
        data = copy.deepcopy(self.track)
        data["info"]["position"] = self.position_ms
        return data

    def state(self, *, connected: bool = True) -> Json:
        return {"time": _now_ms(), "position": self.position_ms, "connected": connected, "ping": 0}

    def to_json(self, *, connected: bool = True) -> Json:
        return {
            "guildId": str(self.guild_id),
            "track": self.track_json(),
            "volume": self.volume,
            "paused": self.paused,
            "state": self.state(connected=connected),
            "voice": dict(self.voice),
            "filters": copy.deepcopy(self.filters),
        }


@dataclass(eq=False)
class FakeSession:
    """One Lavalink session: one websocket connection of one bot (``User-Id``)."""

    session_id: str
    user_id: int
    client_name: str
    players: dict[int, FakePlayer] = field(default_factory=dict)
    websocket: web.WebSocketResponse | None = None
    resuming: bool = False
    timeout: int = 60
    sent: list[Json] = field(default_factory=list)  # every op sent (or queued) to this session, oldest first
    _pending: list[Json] = field(default_factory=list)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _transport: asyncio.Transport | None = None
    _expiry: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.websocket is not None and not self.websocket.closed

    def events(self, event_type: str | None = None) -> list[Json]:
        """The ``event`` ops sent so far, optionally only those of one ``type``."""
        return [
            op for op in self.sent if op["op"] == "event" and (event_type is None or op["type"] == event_type)
        ]

    async def send(self, payload: Json) -> None:
        """Send an op; while disconnected but resumable, queue it for replay on resume."""
        self.sent.append(payload)
        async with self._send_lock:
            ws = self.websocket
            if ws is None or ws.closed:
                if self.resuming:
                    self._pending.append(payload)
                return
            try:
                await ws.send_json(payload)
            except ConnectionError as exc:
                _log.debug("Could not send %s to session %s: %s", payload["op"], self.session_id, exc)
                if self.resuming:
                    self._pending.append(payload)

    async def attach(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, *, resumed: bool
    ) -> None:
        """Bind a new or resumed websocket: send ``ready``, then replay the ops queued meanwhile."""
        async with self._send_lock:
            self.websocket = ws
            self._transport = transport
            ready: Json = {"op": "ready", "resumed": resumed, "sessionId": self.session_id}
            self.sent.append(ready)
            pending, self._pending = self._pending, []
            for payload in (ready, *pending):
                await ws.send_json(payload)

    def detach(self, ws: web.WebSocketResponse) -> bool:
        """Forget ``ws`` if it is still this session's websocket; says whether it was."""
        if self.websocket is not ws:
            return False
        self.websocket = None
        self._transport = None
        return True

    def _abort_transport(self) -> None:
        """Cut the TCP connection under the websocket without a close frame."""
        if self._transport is not None:
            self._transport.abort()

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


class FakeLavalink:
    """A fake Lavalink v4 node listening on ``127.0.0.1`` (random port, kept across restarts)."""

    def __init__(
        self,
        *,
        password: str = "youshallnotpass",  # noqa: S107
        autoclock: bool = False,
        session_patch: bool = True,
        keep_sessions: bool = False,
        lyrics_plugin: bool = False,
        lavasrc: bool = False,
    ) -> None:
        self.password = password
        self.lyrics_plugin = lyrics_plugin
        self.lavasrc = lavasrc
        self._lyrics: dict[str, Json] = {}  # track identifier -> LavaLyrics' lyrics object
        self.autoclock = autoclock
        self.session_patch = session_patch  # False: no PATCH /v4/sessions/{sid} route (404)
        self.port: int = 0
        self.sessions: dict[str, FakeSession] = {}
        self.requests: list[RecordedRequest] = []

        self._tracks: dict[str, Json] = {}  # encoded -> track json (registration order)
        self._playlists: dict[str, Json] = {}  # url -> playlist json
        self._failures: dict[str, str] = {}  # identifier -> error message
        self._loads_open = asyncio.Event()  # cleared by hold_loads(): loadtracks waits for it
        self._loads_open.set()
        self.loads_waiting = 0  # loadtracks requests held by hold_loads()
        self._sequence = itertools.count(1)

        self._runner: web.AppRunner | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._started_at = time.monotonic()
        self._down = False
        self._session_connected = asyncio.Event()
        # Realism switch: when True, a player without a complete voice state reports
        # connected=false and its track does not advance (Lavalink has nowhere to send audio).
        self.require_voice = False
        # Fault controls (see the module docstring).
        self.keep_sessions = keep_sessions  # every new session resumable (60 s) without asking
        self.omit_plugin_info = False
        self.refused_users: set[int] = set()
        self.connection_attempts: Counter[int] = Counter()  # websocket handshakes per User-Id
        self.handshake_times: defaultdict[int, list[float]] = defaultdict(list)  # time.monotonic() of each
        self._attempted = asyncio.Event()
        self._drop_plays: list[int | None] = []
        self._stalled: asyncio.Event | None = None
        self._stalled_method: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def reserve_port(self) -> int:
        """Pick the port now and listen on it only at :meth:`start`: "Lavalink is not up yet"."""
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = int(sock.getsockname()[1])
        return self.port

    async def start(self) -> None:
        if self._runner is not None:
            return
        await self._serve()
        if self.autoclock and self._clock_task is None:
            self._clock_task = asyncio.create_task(self._autoclock(), name="fake-lavalink-clock")
        _log.debug("Fake Lavalink listening on %s", self.uri)

    async def close(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            await asyncio.gather(self._clock_task, return_exceptions=True)
            self._clock_task = None
        await self._kill(graceful=False)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def shutdown_node(self, *, graceful: bool = False) -> None:
        """Simulate Lavalink dying: drop every websocket and stop listening until :meth:`restart`.

        ``graceful=False`` (default) cuts the TCP connections without a close frame (the client sees
        an abnormal closure, 1006); ``graceful=True`` sends a close frame with code 1001 (going away)
        first.  Either way all sessions and players are lost, like a killed process, and REST calls
        and new websocket connections are refused.
        """
        await self._kill(graceful=graceful)

    async def restart(self) -> None:
        """Come back (empty: no sessions) on the same port after :meth:`shutdown_node`."""
        if self._runner is not None:
            return
        self._started_at = time.monotonic()
        await self._serve()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/version", self._get_version)
        app.router.add_get("/v4/websocket", self._websocket)
        app.router.add_get("/v4/info", self._get_info)
        app.router.add_get("/v4/stats", self._get_stats)
        app.router.add_get("/v4/loadtracks", self._get_loadtracks)
        app.router.add_get("/v4/decodetrack", self._get_decodetrack)
        app.router.add_post("/v4/decodetracks", self._post_decodetracks)
        if self.session_patch:
            app.router.add_patch("/v4/sessions/{session_id}", self._patch_session)
        app.router.add_get("/v4/sessions/{session_id}/players", self._get_players)
        player_path = "/v4/sessions/{session_id}/players/{guild_id}"
        app.router.add_get(player_path, self._get_player)
        app.router.add_patch(player_path, self._patch_player)
        app.router.add_delete(player_path, self._delete_player)
        if self.lyrics_plugin:
            app.router.add_get("/v4/lyrics", self._get_lyrics)
            app.router.add_get(player_path + "/track/lyrics", self._get_player_lyrics)

        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner
        self._down = False

    async def _kill(self, *, graceful: bool) -> None:
        self._down = True
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for session in sessions:
            session._cancel_expiry()
            ws = session.websocket
            if ws is None or ws.closed:
                continue
            if graceful:
                try:
                    await asyncio.wait_for(ws.close(code=1001, message=b"Lavalink is shutting down"), 1.0)
                except (TimeoutError, ConnectionError):
                    session._abort_transport()
            else:
                session._abort_transport()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------ catalogue

    def add_track(
        self,
        *,
        identifier: str,
        title: str,
        author: str = "Artist",
        length_ms: int = 180_000,
        uri: str | None = None,
        is_stream: bool = False,
        source: str = "youtube",
        plugin_info: Json | None = None,
    ) -> Json:
        """Register a track and return its track json (a copy); ``encoded`` decodes back (``decode``)."""
        if uri is None:
            uri = self._default_uri(source, identifier)
        artwork = f"https://i.ytimg.com/vi/{identifier}/hqdefault.jpg" if source == "youtube" else None
        info: Json = {
            "identifier": identifier,
            "isSeekable": not is_stream,
            "author": author,
            "length": STREAM_LENGTH if is_stream else length_ms,
            "isStream": is_stream,
            "position": 0,
            "title": title,
            "uri": uri,
            "artworkUrl": artwork,
            "isrc": None,
            "sourceName": source,
        }
        encoded = self._encode(info)
        track: Json = {
            "encoded": encoded,
            "info": info,
            "pluginInfo": dict(plugin_info or {}),
            "userData": {},
        }
        self._tracks[encoded] = track
        return copy.deepcopy(track)

    def add_lyrics(
        self,
        identifier: str,
        *,
        lines: list[str] | None = None,
        text: str | None = None,
        provider: str = "LRCLIB",
    ) -> None:
        """Lyrics LavaLyrics finds for the track ``identifier`` (timed ``lines``, or plain ``text``)."""
        self._lyrics[identifier] = {
            "sourceName": "lrclib",
            "provider": provider,
            "text": text,
            "lines": [
                {"timestamp": 5000 * index, "duration": 5000, "line": line, "plugin": {}}
                for index, line in enumerate(lines or [])
            ],
            "plugin": {},
        }

    def add_playlist(self, url: str, name: str, tracks: list[Json], selected: int = -1) -> None:
        """Register a playlist answered for ``loadtracks?identifier=<url>``."""
        self._playlists[url] = {
            "info": {"name": name, "selectedTrack": selected},
            "pluginInfo": {},
            "tracks": [self._fresh(track) for track in tracks],
        }

    def hold_loads(self) -> None:
        """Make every ``loadtracks`` wait (a slow search) until ``release_loads()``."""
        self._loads_open.clear()

    def release_loads(self) -> None:
        self._loads_open.set()

    def fail_load(self, identifier: str, message: str = "Something broke") -> None:
        """Make ``loadtracks`` for exactly this identifier answer loadType ``error``."""
        self._failures[identifier] = message

    def decode(self, encoded: str) -> Json:
        """The track json of an ``encoded`` string; raises ``ValueError`` if it is not one of ours."""
        track = self._tracks.get(encoded)
        if track is not None:
            return copy.deepcopy(track)
        try:
            raw = json.loads(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"not a track encoded by the fake Lavalink: {encoded!r}") from exc
        if not isinstance(raw, dict) or raw.get("magic") != _ENCODED_MAGIC:
            raise ValueError(f"not a track encoded by the fake Lavalink: {encoded!r}")
        return {"encoded": encoded, "info": raw["info"], "pluginInfo": {}, "userData": {}}

    def load(self, identifier: str) -> Json:
        """The ``/v4/loadtracks`` answer for ``identifier`` ({"loadType": ..., "data": ...})."""
        if identifier in self._failures:
            error: Json = {
                "message": self._failures[identifier],
                "severity": "common",
                "cause": f"java.lang.RuntimeException: {self._failures[identifier]}",
            }
            return {"loadType": "error", "data": error}
        if not self.lavasrc and identifier.startswith(tuple(f"https://{h}/" for h in _LAVASRC_HOSTS)):
            return {"loadType": "empty", "data": {}}  # no source manager knows such links
        for track in self._tracks.values():
            if identifier in (track["info"]["identifier"], track["info"]["uri"]):
                return {"loadType": "track", "data": self._fresh(track)}
        if identifier in self._playlists:
            return {"loadType": "playlist", "data": copy.deepcopy(self._playlists[identifier])}
        match = _SEARCH_PREFIX.match(identifier)
        needle = (match.group("query") if match else identifier).strip().casefold()
        if not needle:
            return {"loadType": "empty", "data": {}}
        found = [self._fresh(t) for t in self._tracks.values() if needle in t["info"]["title"].casefold()]
        if not found:
            return {"loadType": "empty", "data": {}}
        return {"loadType": "search", "data": found[:SEARCH_LIMIT]}

    def _encode(self, info: Json) -> str:
        raw = {"magic": _ENCODED_MAGIC, "n": next(self._sequence), "info": info}
        return base64.b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode()

    @staticmethod
    def _fresh(track: Json) -> Json:
        data = copy.deepcopy(track)
        data["userData"] = {}
        data["info"]["position"] = 0
        return data

    @staticmethod
    def _default_uri(source: str, identifier: str) -> str | None:
        if source == "youtube":
            return f"https://www.youtube.com/watch?v={identifier}"
        if source == "soundcloud":
            return f"https://soundcloud.com/{identifier}"
        return None

    # ------------------------------------------------------------------ inspection helpers

    def session_for_user(self, user_id: int) -> FakeSession | None:
        """The newest live (websocket open) session of a bot, by its ``User-Id``."""
        live = [s for s in self.sessions.values() if s.user_id == user_id and s.connected]
        return live[-1] if live else None

    async def wait_for_session(self, user_id: int) -> FakeSession:
        """Wait until the bot ``user_id`` has a live session; wrap it in ``asyncio.timeout``."""
        while (session := self.session_for_user(user_id)) is None:
            self._session_connected.clear()
            await self._session_connected.wait()
        return session

    def get_player(self, guild_id: int, *, user_id: int | None = None) -> FakePlayer | None:
        """The player of ``guild_id`` (``user_id`` picks the bot when several share the guild)."""
        try:
            return self._find_player(guild_id, user_id)[1]
        except LookupError:
            return None

    def requests_matching(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded REST calls, filtered by method and/or a substring of the path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or path in r.path)
        ]

    def stats(self) -> Json:
        players = [p for s in self.sessions.values() for p in s.players.values()]
        return {
            "players": len(players),
            "playingPlayers": sum(1 for p in players if p.playing),
            "uptime": int((time.monotonic() - self._started_at) * 1000),
            "memory": {
                "free": 200_000_000,
                "used": 100_000_000,
                "allocated": 300_000_000,
                "reservable": 2**30,
            },
            "cpu": {"cores": 4, "systemLoad": 0.05, "lavalinkLoad": 0.01},
            "frameStats": None,
        }

    # ------------------------------------------------------------------ clock and server-side events

    async def advance(self, ms: int) -> None:
        """Move every playing, unpaused player forward by ``ms`` (if ``require_voice``: with voice only).

        A track reaching its length (or ``endTime``) ends with ``TrackEndEvent`` reason ``finished``
        and is cleared; other players with a track get a ``playerUpdate``; every session gets a
        ``stats`` op.  One call ends at most the current track of a player (the client starts the
        next one); the remainder of ``ms`` is not carried over.
        """
        if ms < 0:
            raise ValueError("the clock only moves forward")
        async with self._lock:
            for session in list(self.sessions.values()):
                for player in list(session.players.values()):
                    await self._tick(session, player, ms)
                await session.send({"op": "stats", **self.stats()})

    async def _tick(self, session: FakeSession, player: FakePlayer, ms: int) -> None:
        if player.track is None:
            return
        if player.playing and self._connected(player):
            player.position_ms += ms
            end = player.length_ms
            if end is not None and player.position_ms >= end:
                player.position_ms = end
                await self._end_track(session, player, "finished")
                return
        await self._send_player_update(session, player)

    async def finish_track(
        self, guild_id: int, *, user_id: int | None = None, reason: str = "finished"
    ) -> None:
        """End the current track of a guild's player now (``TrackEndEvent`` with ``reason``)."""
        async with self._lock:
            session, player = self._find_player(guild_id, user_id)
            if player.track is None:
                raise LookupError(f"guild {guild_id} has no track playing")
            await self._end_track(session, player, reason)

    async def track_exception(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        message: str = "Something went wrong",
        severity: str = "common",
        cause: str = "java.lang.RuntimeException: Something went wrong",
        end: bool = True,
    ) -> None:
        """Send ``TrackExceptionEvent``; then, like lavaplayer, end the track (``loadFailed``)."""
        async with self._lock:
            session, player = self._find_player(guild_id, user_id)
            if player.track is None:
                raise LookupError(f"guild {guild_id} has no track playing")
            exception: Json = {"message": message, "severity": severity, "cause": cause}
            await self._send_event(
                session, player, "TrackExceptionEvent", track=player.track_json(), exception=exception
            )
            if end:
                await self._end_track(session, player, "loadFailed")

    async def track_stuck(
        self, guild_id: int, *, user_id: int | None = None, threshold_ms: int = 10_000
    ) -> None:
        """Send ``TrackStuckEvent`` (and a ``playerUpdate``) for the current track."""
        async with self._lock:
            session, player = self._find_player(guild_id, user_id)
            if player.track is None:
                raise LookupError(f"guild {guild_id} has no track playing")
            await self._send_event(
                session, player, "TrackStuckEvent", track=player.track_json(), thresholdMs=threshold_ms
            )
            await self._send_player_update(session, player)

    async def websocket_closed(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        code: int = 4014,
        reason: str = "Disconnected",
        by_remote: bool = True,
    ) -> None:
        """Send ``WebSocketClosedEvent`` (Discord's voice websocket for the guild closed)."""
        async with self._lock:
            session, player = self._find_player(guild_id, user_id)
            await self._send_event(
                session, player, "WebSocketClosedEvent", code=code, reason=reason, byRemote=by_remote
            )

    async def drop_connection(self, user_id: int) -> None:
        """Cut one bot's websocket abnormally (network blip) without stopping the server.

        The session survives for its resume ``timeout`` if the client enabled resuming.
        """
        session = self.session_for_user(user_id)
        if session is None or session.websocket is None:
            raise LookupError(f"no live session for user {user_id}")
        ws = session.websocket
        session._abort_transport()
        self._socket_closed(session, ws)

    def go_silent(self, user_id: int) -> None:
        """One bot's connection goes quiet without closing (a host gone, a frozen JVM): the server
        stops reading it, so the client's pings get no pong, and stops sending on it."""
        session = self.session_for_user(user_id)
        if session is None or session._transport is None:
            raise LookupError(f"no live session for user {user_id}")
        session._transport.pause_reading()
        session.websocket = None  # nothing more is sent on it

    async def _autoclock(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.advance(1000)
            except (ConnectionError, RuntimeError):
                _log.exception("Fake Lavalink clock tick failed")

    def _connected(self, player: FakePlayer) -> bool:
        return player.has_voice or not self.require_voice

    def _find_player(self, guild_id: int, user_id: int | None) -> tuple[FakeSession, FakePlayer]:
        found = [
            (session, session.players[guild_id])
            for session in self.sessions.values()
            if guild_id in session.players and (user_id is None or session.user_id == user_id)
        ]
        if not found:
            raise LookupError(f"no player for guild {guild_id} (user {user_id})")
        if len(found) > 1:
            raise LookupError(f"several sessions have a player for guild {guild_id}; pass user_id")
        return found[0]

    async def _send_event(
        self, session: FakeSession, player: FakePlayer, event_type: str, **fields: Any
    ) -> None:
        track = fields.get("track")
        if self.omit_plugin_info and isinstance(track, dict):
            fields["track"] = {key: value for key, value in track.items() if key != "pluginInfo"}
        await session.send({"op": "event", "type": event_type, "guildId": str(player.guild_id), **fields})

    async def send_raw(self, user_id: int, payload: Json) -> None:
        """Send any op, as is, on the live session of ``user_id`` (e.g. a malformed event)."""
        session = self.session_for_user(user_id)
        if session is None:
            raise LookupError(f"no live session for user {user_id}")
        await session.send(payload)

    async def _send_player_update(self, session: FakeSession, player: FakePlayer) -> None:
        await session.send(
            {
                "op": "playerUpdate",
                "guildId": str(player.guild_id),
                "state": player.state(connected=self._connected(player)),
            }
        )

    async def _end_track(self, session: FakeSession, player: FakePlayer, reason: str) -> None:
        track = player.track_json()
        player.track = None
        player.position_ms = 0
        player.end_time = None
        if track is not None:
            await self._send_event(session, player, "TrackEndEvent", track=track, reason=reason)

    async def _start_track(self, session: FakeSession, player: FakePlayer, track: Json, body: Json) -> None:
        if player.track is not None:
            await self._end_track(session, player, "replaced")
        player.track = track
        position = body.get("position")
        player.position_ms = position if isinstance(position, int) and position > 0 else 0
        end_time = body.get("endTime")
        player.end_time = end_time if isinstance(end_time, int) and end_time > 0 else None
        await self._send_event(session, player, "TrackStartEvent", track=player.track_json())
        await self._send_player_update(session, player)

    # ------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/v4/websocket":
            return await handler(request)

        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        session_id = request.match_info.get("session_id")
        session = self.sessions.get(session_id) if session_id else None
        user_id = session.user_id if session else self._header_user_id(request)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            json=body,
            session_id=session_id,
            user_id=user_id,
        )
        self.requests.append(record)
        request[_BODY] = body

        stalled = self._stalled
        if stalled is not None and self._stalled_method in (None, request.method):
            await stalled.wait()
        if self._should_drop(request, body):
            _log.debug("Dropping the connection of %s %s", request.method, request.path)
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=204)  # never written: the connection is gone
        response: web.StreamResponse
        if request.headers.get("Authorization") != self.password:
            response = _error_response(401, "Unauthorized", request.path)
        else:
            try:
                response = await handler(request)
            except _ApiError as exc:
                response = _error_response(exc.status, exc.message, request.path)
            except web.HTTPException as exc:
                response = _error_response(exc.status, exc.reason, request.path)
        record.status = response.status
        return response

    def _should_drop(self, request: web.Request, body: Any) -> bool:
        if not self._drop_plays or request.method != "PATCH" or "/players/" not in request.path:
            return False
        track = body.get("track") if isinstance(body, dict) else None
        if not isinstance(track, dict) or not track.get("encoded"):
            return False
        session = self.sessions.get(request.match_info.get("session_id", ""))
        for index, user_id in enumerate(self._drop_plays):
            if user_id is None or (session is not None and session.user_id == user_id):
                del self._drop_plays[index]
                return True
        return False

    def drop_next_play(self, *, user_id: int | None = None) -> None:
        """Cut the connection of the next PATCH that starts a track (of ``user_id``'s session), before
        answering: the client sees the connection drop in the middle of ``player.play()``."""
        self._drop_plays.append(user_id)

    def stall_rest(self, *, method: str | None = None) -> None:
        """Every REST call (or every one with ``method``) from now on waits, unanswered, until
        :meth:`release_rest`."""
        if self._stalled is None:
            self._stalled = asyncio.Event()
        self._stalled_method = method.upper() if method else None

    def release_rest(self) -> None:
        if self._stalled is not None:
            self._stalled.set()
            self._stalled = None

    async def wait_for_attempts(self, user_id: int, count: int) -> None:
        """Wait until ``user_id`` has made ``count`` websocket handshakes in all; wrap in a timeout."""
        while self.connection_attempts[user_id] < count:
            self._attempted.clear()
            await self._attempted.wait()

    @staticmethod
    def _header_user_id(request: web.Request) -> int | None:
        try:
            return int(request.headers["User-Id"])
        except (KeyError, ValueError):
            return None

    def _session(self, request: web.Request) -> FakeSession:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise _ApiError(404, "Session not found")
        return session

    @staticmethod
    def _guild_id(request: web.Request) -> int:
        try:
            return int(request.match_info["guild_id"])
        except ValueError as exc:
            raise _ApiError(400, "Invalid guild id") from exc

    # ------------------------------------------------------------------ REST handlers

    async def _get_version(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=VERSION)

    async def _get_info(self, request: web.Request) -> web.StreamResponse:
        info = copy.deepcopy(_INFO)
        if self.lyrics_plugin:
            info["plugins"].append({"name": "lavalyrics-plugin", "version": "1.0.0"})
        if self.lavasrc:
            info["plugins"].append({"name": "lavasrc-plugin", "version": "4.8.3"})
            info["sourceManagers"] += ["spotify", "applemusic", "deezer"]
        return web.json_response(info)

    def _lyrics_response(self, track: Json) -> web.StreamResponse:
        found = self._lyrics.get(track["info"]["identifier"])
        return web.Response(status=204) if found is None else web.json_response(found)

    async def _get_lyrics(self, request: web.Request) -> web.StreamResponse:
        encoded = request.query.get("track")
        if encoded is None:
            raise _ApiError(400, "Required request parameter 'track' is not present")
        return self._lyrics_response(self._decode_or_400(encoded))

    async def _get_player_lyrics(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        player = session.players.get(self._guild_id(request))
        if player is None:
            raise _ApiError(404, "Player not found")
        if player.track is None:
            raise _ApiError(404, "No track playing")
        return self._lyrics_response(player.track)

    async def _get_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats())

    async def _get_loadtracks(self, request: web.Request) -> web.StreamResponse:
        identifier = request.query.get("identifier")
        if identifier is None:
            raise _ApiError(400, "Required request parameter 'identifier' is not present")
        if not self._loads_open.is_set():
            self.loads_waiting += 1
            try:
                await self._loads_open.wait()
            finally:
                self.loads_waiting -= 1
        return web.json_response(self.load(identifier))

    async def _get_decodetrack(self, request: web.Request) -> web.StreamResponse:
        encoded = request.query.get("encodedTrack")
        if encoded is None:
            raise _ApiError(400, "Required request parameter 'encodedTrack' is not present")
        return web.json_response(self._decode_or_400(encoded))

    async def _post_decodetracks(self, request: web.Request) -> web.StreamResponse:
        body = request[_BODY]
        if not isinstance(body, list) or not all(isinstance(item, str) for item in body):
            raise _ApiError(400, "Expected a JSON array of encoded tracks")
        return web.json_response([self._decode_or_400(item) for item in body])

    def _decode_or_400(self, encoded: str) -> Json:
        try:
            return self.decode(encoded)
        except ValueError as exc:
            raise _ApiError(400, "Failed to decode track") from exc

    async def _patch_session(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        body = request[_BODY]
        if not isinstance(body, dict):
            raise _ApiError(400, "Expected a JSON object")
        if "resuming" in body:
            session.resuming = bool(body["resuming"])
        if "timeout" in body:
            timeout = body["timeout"]
            if not isinstance(timeout, int) or timeout < 0:
                raise _ApiError(400, "Invalid timeout")
            session.timeout = timeout
        return web.json_response({"resuming": session.resuming, "timeout": session.timeout})

    async def _get_players(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        return web.json_response(
            [player.to_json(connected=self._connected(player)) for player in session.players.values()]
        )

    async def _get_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        player = session.players.get(self._guild_id(request))
        if player is None:
            raise _ApiError(404, "Player not found")
        return web.json_response(player.to_json(connected=self._connected(player)))

    async def _delete_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        guild_id = self._guild_id(request)
        async with self._lock:
            player = session.players.pop(guild_id, None)
            if player is not None and player.track is not None:
                # lavaplayer's destroy() stops the playing track
                await self._end_track(session, player, "stopped")
        return web.Response(status=204)

    async def _patch_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        guild_id = self._guild_id(request)
        body = request[_BODY]
        if not isinstance(body, dict):
            raise _ApiError(400, "Expected a JSON object")
        no_replace = _parse_bool(request.query.get("noReplace"))
        async with self._lock:
            player = await self._apply_patch(session, guild_id, body, no_replace=no_replace)
        return web.json_response(player.to_json(connected=self._connected(player)))

    async def _apply_patch(
        self, session: FakeSession, guild_id: int, body: Json, *, no_replace: bool
    ) -> FakePlayer:
        has_track, encoded, identifier, user_data = self._track_request(body)
        voice = self._voice_request(body)
        volume = body.get("volume")
        if volume is not None and (not isinstance(volume, int) or not 0 <= volume <= 1000):
            raise _ApiError(400, "Volume must be between 0 and 1000")

        player = session.players.get(guild_id)
        if player is None:
            player = session.players[guild_id] = FakePlayer(guild_id=guild_id)
        player.patches.append(copy.deepcopy(body))

        if voice is not None:
            player.voice = voice
        if "paused" in body and not has_track:
            player.paused = bool(body["paused"])
        if volume is not None:
            player.volume = volume
        if "position" in body and not has_track:
            await self._seek(session, player, body["position"])
        if "endTime" in body and not has_track:
            end_time = body["endTime"]
            player.end_time = end_time if isinstance(end_time, int) and end_time > 0 else None
        if isinstance(body.get("filters"), dict):
            player.filters = copy.deepcopy(body["filters"])
            await self._send_player_update(session, player)

        if not has_track or (no_replace and player.track is not None):
            return player

        player.paused = bool(body.get("paused", False))
        if encoded is not None:
            track = self._decode_or_400(encoded)
        elif identifier is not None:
            track = self._resolve_identifier(identifier)
        else:
            await self._end_track(session, player, "stopped")
            return player
        track["userData"] = copy.deepcopy(user_data) if user_data is not None else {}
        await self._start_track(session, player, track, body)
        return player

    @staticmethod
    def _track_request(body: Json) -> tuple[bool, str | None, str | None, Json | None]:
        """(track given?, encoded, identifier, userData) from ``track`` or the deprecated top-level fields."""
        track = body.get("track")
        if isinstance(track, dict):
            present = "encoded" in track or "identifier" in track
            encoded, identifier, user_data = (
                track.get("encoded"),
                track.get("identifier"),
                track.get("userData"),
            )
        else:
            present = "encodedTrack" in body or "identifier" in body
            encoded, identifier, user_data = body.get("encodedTrack"), body.get("identifier"), None
        if encoded is not None and identifier is not None:
            raise _ApiError(400, "Cannot specify both encoded and identifier")
        if encoded is not None and not isinstance(encoded, str):
            raise _ApiError(400, "Track encoded must be a string")
        if identifier is not None and not isinstance(identifier, str):
            raise _ApiError(400, "Track identifier must be a string")
        if user_data is not None and not isinstance(user_data, dict):
            raise _ApiError(400, "Track userData must be an object")
        return present, encoded, identifier, user_data

    @staticmethod
    def _voice_request(body: Json) -> Json | None:
        voice = body.get("voice")
        if voice is None:
            return None
        if not isinstance(voice, dict):
            raise _ApiError(400, "Invalid voice state")
        required = ("token", "endpoint", "sessionId", "channelId")
        if any(not isinstance(voice.get(key), str) or not voice.get(key) for key in required):
            raise _ApiError(
                400, "Partial voice state update: token, endpoint, sessionId and channelId are required"
            )
        return {key: voice[key] for key in required}

    async def _seek(self, session: FakeSession, player: FakePlayer, position: Any) -> None:
        if not isinstance(position, int) or position < 0:
            raise _ApiError(400, "Invalid position")
        if player.track is None:
            raise _ApiError(500, "Can't seek when not playing anything")
        end = player.length_ms
        player.position_ms = min(position, end) if end is not None else position
        await self._send_player_update(session, player)

    def _resolve_identifier(self, identifier: str) -> Json:
        result = self.load(identifier)
        load_type = result["loadType"]
        if load_type == "track":
            return result["data"]
        if load_type == "error":
            raise _ApiError(500, result["data"]["message"])
        if load_type in ("playlist", "search"):
            raise _ApiError(500, "Cannot play a playlist or search result")
        raise _ApiError(500, f"No track found for identifier {identifier}")

    # ------------------------------------------------------------------ websocket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != self.password:
            _log.debug("Rejected websocket with a wrong password")
            return web.Response(status=401, text="Unauthorized")
        user_id = self._header_user_id(request)
        if user_id is None:
            return web.Response(status=400, text="Missing or invalid User-Id header")
        self.connection_attempts[user_id] += 1
        self.handshake_times[user_id].append(time.monotonic())
        self._attempted.set()
        if user_id in self.refused_users:
            return web.Response(status=503, text="Refused by the fake on purpose")

        session = self._resumable(request.headers.get("Session-Id"), user_id)
        resumed = session is not None
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)

        if session is None:
            session = FakeSession(
                session_id=self._new_session_id(),
                user_id=user_id,
                client_name=request.headers.get("Client-Name", ""),
                resuming=self.keep_sessions,
            )
            self.sessions[session.session_id] = session
        else:
            session._cancel_expiry()
        _log.debug("Session %s (user %s) connected, resumed=%s", session.session_id, user_id, resumed)

        try:
            await session.attach(ws, request.transport, resumed=resumed)
            self._session_connected.set()
            await session.send({"op": "stats", **self.stats()})
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    _log.debug("Ignoring client message on session %s: %s", session.session_id, message.data)
        except ConnectionError as exc:
            _log.debug("Websocket of session %s failed: %s", session.session_id, exc)
        finally:
            self._socket_closed(session, ws)
        return ws

    def _resumable(self, session_id: str | None, user_id: int) -> FakeSession | None:
        if not session_id:
            return None
        session = self.sessions.get(session_id)
        if session is None or session.connected or not session.resuming or session.user_id != user_id:
            return None
        return session

    def _new_session_id(self) -> str:
        while True:
            session_id = "".join(secrets.choice(_SESSION_ALPHABET) for _ in range(16))
            if session_id not in self.sessions:
                return session_id

    def _socket_closed(self, session: FakeSession, ws: web.WebSocketResponse) -> None:
        if not session.detach(ws):
            return  # already handled, or replaced by a resumed connection
        if self._down or self.sessions.get(session.session_id) is not session:
            return
        if session.resuming and session.timeout > 0:
            _log.debug("Session %s disconnected; resumable for %ss", session.session_id, session.timeout)
            session._expiry = asyncio.create_task(self._expire(session))
        else:
            _log.debug("Session %s closed", session.session_id)
            del self.sessions[session.session_id]

    async def _expire(self, session: FakeSession) -> None:
        await asyncio.sleep(session.timeout)
        if not session.connected and self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]
            _log.debug("Session %s expired", session.session_id)
