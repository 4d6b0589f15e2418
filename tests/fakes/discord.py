"""A fake Discord (REST v10 + gateway v10) on 127.0.0.1 for end-to-end tests.

The real ``discord.py`` client talks to it once pointed at it::

    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

One :class:`FakeDiscord` serves many bots at once, each identified by its own
token.  Gateway frames are sent as plain-text JSON (no zlib), REST replies carry
``Content-Type: application/json`` exactly, as discord.py expects.

Besides connecting bots it models (see the section comments below):

* users, members, roles, channels and permission overwrites (``add_user``, ``add_member``,
  ``add_role``, ``add_voice_channel``, ``deny_bot_permissions``...), dispatched to the bots;
* voice: op 4 is answered with VOICE_STATE_UPDATE + VOICE_SERVER_UPDATE, voice states are
  shared with the other bots of the guild, ``set_user_voice`` moves humans;
* sharding: ``GET /gateway/bot`` recommends ``shards`` per bot, an IDENTIFY may carry ``shard``
  (each shard is a session of its own and sees the guilds with ``(guild_id >> 22) % num_shards
  == shard_id``; guild events, voice answers and interactions go to that shard only, DMs to
  shard 0), and a session that would hold more than ``max_guilds_per_shard`` guilds is closed
  with 4011, as Discord does;
* interactions (``send_command``, ``send_autocomplete``, ``click_button``, ``select``,
  ``submit_modal`` return a :class:`FakeInteraction` recording the bot's answers) and the
  bot's channel/DM messages (``channel_messages``, ``wait_for_channel_message``); those live in
  :mod:`tests.fakes.discord_interactions` and :mod:`tests.fakes.discord_payloads`.

Hooks that change the world synchronously number their dispatches at once (so they arrive in
order with everything else) and write them in the background; ``await fake.drain()`` waits
for them.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import re
import secrets
import string
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .discord_interactions import FakeInteraction, InteractionsMixin
from .discord_payloads import (
    FakeButton,
    FakeMember,
    FakeMessage,
    FakeSelect,
    FakeUser,
    Json,
    Permission,
    compute_permissions,
    error,
    json_response,
    new_snowflake,
    role_payload,
)

_log = logging.getLogger(__name__)

__all__ = [
    "FakeBot",
    "FakeButton",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeSelect",
    "FakeUser",
    "Permission",
    "RecordedRequest",
    "VoiceStateUpdate",
    "make_fake_token",
    "shard_of",
]

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
# @everyone: view channel, send messages, embed links, read history, connect, speak, use VAD,
# use application commands, set voice channel status.
_EVERYONE_PERMISSIONS = (
    (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 20) | (1 << 21) | (1 << 25) | (1 << 31) | (1 << 48)
)
# Close codes after which Discord does not allow a RESUME.
_NON_RESUMABLE_CODES = frozenset({4007, 4009})
_CLIENT_CLEAN_CLOSE_CODES = frozenset({1000, 1001})
_HISTORY_SIZE = 1000
_VOICE_CHANNEL_TYPES = frozenset({2, 13})
_INTENT_GUILD_MEMBERS = 1 << 1
_INTENT_GUILD_VOICE_STATES = 1 << 7
# Discord's most guilds per gateway session (sharding is required beyond it: close 4011).
DISCORD_MAX_GUILDS_PER_SHARD = 2500

# Shared with discord_payloads / discord_interactions (moved there to keep this file short).
_Json = Json
_new_snowflake = new_snowflake
_json_response = json_response
_error = error
_counter = itertools.count(1)


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard that receives a guild's events: Discord's formula."""
    return (guild_id >> 22) % num_shards


def _shard_key(session: _Session) -> int:
    """Sessions of different shards of one bot are meant to be open together; of one, never."""
    return 0 if session.shard_id is None else session.shard_id  # unsharded: the one shard, 0


def make_fake_token(client_id: int) -> str:
    """A token shaped like a Discord bot token, obviously fake and random per call."""
    first = base64.urlsafe_b64encode(str(client_id).encode()).decode().rstrip("=")
    second = "FAKE" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(2))
    third = "fake-token-for-tests-only-" + secrets.token_urlsafe(12)
    return f"{first}.{second}.{third}"


@dataclass
class RecordedRequest:
    """One REST call.  ``path`` is relative to ``api_base`` (e.g. ``/users/@me``), no query."""

    method: str
    path: str
    client_id: int | None
    json: Any = None
    status: int = 0


@dataclass(frozen=True)
class VoiceStateUpdate:
    """A gateway op 4 (voice state update) sent by a bot."""

    client_id: int
    guild_id: int
    channel_id: int | None
    self_mute: bool
    self_deaf: bool
    raw: _Json


@dataclass(eq=False)
class FakeBot:
    client_id: int
    name: str
    token: str = field(repr=False)
    revoked: bool = False
    identify_count: int = 0
    resume_count: int = 0
    guild_ids: set[int] = field(default_factory=set)
    identify_close_code: int | None = None
    last_identify_intents: int | None = None
    sessions: dict[str, _Session] = field(default_factory=dict, repr=False)
    # When (loop time) each successful IDENTIFY arrived: identify counts over time.
    identify_times: list[float] = field(default_factory=list)
    # Seconds after each READY at which the fake sends the session an event discord.py cannot
    # parse (a channel without a name), which ends that client's gateway loop: a deterministic
    # crash loop, as seen against servers whose payloads discord.py does not understand.
    crash_after_ready: float | None = None
    # With crash_after_ready: close the connection with this code instead (4009: a session
    # timeout, which discord.py answers by identifying again inside the same client).
    crash_close_code: int | None = None
    # What `GET /gateway/bot` recommends; None: enough shards for `max_guilds_per_shard`.
    shards: int | None = None
    # The `shard` field of each accepted IDENTIFY (None: unsharded), in order (see identify_times).
    identify_shards: list[tuple[int, int] | None] = field(default_factory=list)
    # IDENTIFYs refused with 4011 (sharding required).
    sharding_required_closes: int = 0
    # The most sessions of this bot (of one shard) that were open at the same time, over the
    # whole run: 2 means two processes ran the bot at once, whatever happened afterwards.
    max_concurrent_sessions: int = 0
    # How the client ended each of its connections that had a session, in order: the close code
    # of its close frame (4000 is what discord.py sends when it closes while reading), 1006 when
    # the socket dropped without one; None when the fake closed it.
    client_closes: list[int | None] = field(default_factory=list)

    @property
    def id(self) -> int:
        """The bot's user id (same as ``client_id``), so a bot can stand where a user goes."""
        return self.client_id

    def user_payload(self) -> _Json:
        return {
            "id": str(self.client_id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "flags": 0,
            "public_flags": 0,
            "verified": True,
            "mfa_enabled": False,
        }


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    member_count: int = 10
    channels: list[_Json] = field(default_factory=list)
    roles: list[_Json] = field(default_factory=list)
    owner_id: int = 0
    # Current voice states (Discord's voice state objects without ``member``), one per user.
    voice_states: list[_Json] = field(default_factory=list)
    # Members the fake knows: bots added to the guild and users given to add_member() etc.
    members: dict[int, FakeMember] = field(default_factory=dict)
    # A Discord outage for this guild: READY lists it unavailable and no GUILD_CREATE follows
    # until end_guild_outage() (discord.py keeps it with `unavailable=True`, `me` None).
    outage: bool = False
    # The community's language (guild.preferred_locale; interactions' guild_locale).
    preferred_locale: str = "en-US"

    def __post_init__(self) -> None:
        if not self.owner_id:
            self.owner_id = _new_snowflake()
        if not self.channels:
            self.channels = [text_channel_payload("general", 0), voice_channel_payload("Music", 1)]
        if not self.roles:
            self.roles = [role_payload(self.id, "@everyone", _EVERYONE_PERMISSIONS, 0)]

    def _first_channel_id(self, channel_type: int) -> int:
        return next(int(c["id"]) for c in self.channels if c["type"] == channel_type)

    @property
    def text_channel_id(self) -> int:
        return self._first_channel_id(0)

    @property
    def voice_channel_id(self) -> int:
        return self._first_channel_id(2)

    def channel(self, channel_id: int) -> _Json | None:
        return next((c for c in self.channels if int(c["id"]) == channel_id), None)

    def channel_payload(self, channel_id: int) -> _Json:
        """The channel object as sent in CHANNEL_CREATE/UPDATE (with ``guild_id``)."""
        channel = self.channel(channel_id)
        if channel is None:
            raise KeyError(f"guild {self.id} has no channel {channel_id}")
        return {**json.loads(json.dumps(channel)), "guild_id": str(self.id)}

    def role(self, role_id: int) -> _Json | None:
        return next((r for r in self.roles if int(r["id"]) == role_id), None)

    def permissions_of(self, user_id: int, channel_id: int | None = None) -> int:
        """The member's permission bits (in ``channel_id`` with its overwrites); 0 for non-members."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        channel = self.channel(channel_id) if channel_id is not None else None
        overwrites = channel.get("permission_overwrites") if channel is not None else None
        return compute_permissions(
            guild_id=self.id, owner_id=self.owner_id, member=member, roles=self.roles, overwrites=overwrites
        )

    def voice_state(self, user_id: int) -> _Json | None:
        return next((v for v in self.voice_states if int(v["user_id"]) == user_id), None)

    def _set_voice_state(self, user_id: int, state: _Json | None) -> None:
        self.voice_states = [v for v in self.voice_states if int(v["user_id"]) != user_id]
        if state is not None:
            self.voice_states.append(state)

    def to_payload(
        self, bot: FakeBot, *, unavailable: bool | None, users: Callable[[int], _Json] | None = None
    ) -> _Json:
        """The full guild object as sent in GUILD_CREATE to ``bot``.

        ``members`` holds the bot itself and (when ``users`` can describe them) the members in voice.
        """
        own = self.members.get(bot.client_id) or FakeMember(bot.client_id)
        members = [own.payload(bot.user_payload())]
        if users is not None:
            for state in self.voice_states:
                user_id = int(state["user_id"])
                member = self.members.get(user_id)
                if member is not None and user_id != bot.client_id:
                    members.append(member.payload(users(user_id)))
        payload: _Json = {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "member_count": self.member_count,
            "large": self.member_count > 250,
            "joined_at": own.joined_at,
            "channels": [json.loads(json.dumps(c)) for c in self.channels],
            "roles": [dict(r) for r in self.roles],
            "members": members,
            "voice_states": [dict(v) for v in self.voice_states],
            "presences": [],
            "threads": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.preferred_locale,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "application_id": None,
            "description": None,
        }
        if unavailable is not None:
            payload["unavailable"] = unavailable
        return payload


def text_channel_payload(name: str, position: int) -> _Json:
    return {
        "id": str(_new_snowflake()),
        "type": 0,
        "name": name,
        "position": position,
        "parent_id": None,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }


def voice_channel_payload(name: str, position: int, *, user_limit: int = 0) -> _Json:
    return {
        "id": str(_new_snowflake()),
        "type": 2,
        "name": name,
        "position": position,
        "parent_id": None,
        "permission_overwrites": [],
        "nsfw": False,
        "bitrate": 64000,
        "user_limit": user_limit,
        "rtc_region": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
        "flags": 0,
    }


class _Connection:
    """One gateway websocket.  ``session`` is set once IDENTIFY/RESUME succeeded."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: _Session | None = None
        self.server_close_code: int | None = None
        self._lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return not self.ws.closed

    async def send_json(self, payload: _Json) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self._lock:
                await self.ws.send_str(json.dumps(payload))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            _log.debug("fake gateway: send failed: %r", exc)
            return False
        return True

    async def close(self, code: int) -> None:
        if self.server_close_code is None:
            self.server_close_code = code
        try:
            await self.ws.close(code=code)
        except (TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            _log.debug("fake gateway: close failed: %r", exc)


@dataclass(eq=False)
class _Session:
    session_id: str
    bot: FakeBot
    # (shard_id, num_shards) as identified; None: an unsharded session (it sees every guild).
    shard: tuple[int, int] | None = None
    seq: int = 0
    conn: _Connection | None = None
    # Recent dispatches; those after the client's last seen sequence are replayed on RESUME.
    history: deque[_Json] = field(default_factory=lambda: deque(maxlen=_HISTORY_SIZE))
    # Dispatches numbered but not yet written to ``conn``, in order (see FakeDiscord._flush).
    outbox: deque[_Json] = field(default_factory=deque)

    @property
    def shard_id(self) -> int | None:
        return None if self.shard is None else self.shard[0]

    def owns(self, guild_id: int | None) -> bool:
        """Whether this session receives the guild's events (no guild: DMs, which go to shard 0)."""
        if self.shard is None:
            return True
        shard_id, num_shards = self.shard
        return shard_id == (0 if guild_id is None else shard_of(guild_id, num_shards))


_OpHandler = Callable[[_Connection, Any], Awaitable[None]]
_RestHandler = Callable[[FakeBot, "re.Match[str]", Any], web.Response]
_CMDS = r"/applications/(?P<app>\d+)(?:/guilds/(?P<guild>\d+))?/commands"


@dataclass
class _Fail429:
    path_suffix: str
    remaining: int
    retry_after: float
    method: str | None


@dataclass
class _Failure:
    path_suffix: str
    remaining: int
    method: str | None
    status: int
    body: _Json


class FakeDiscord(InteractionsMixin):
    """Fake Discord REST + gateway server serving many bots."""

    def __init__(
        self,
        *,
        heartbeat_interval_ms: int = 41250,
        gateway_path: str = "/",
        max_guilds_per_shard: int = DISCORD_MAX_GUILDS_PER_SHARD,
    ) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # False: heartbeats go unanswered (a zombie connection, which the client must close).
        self.ack_heartbeats = True
        # Where the gateway websocket is served (a proxy may put it on a path of its own).
        self.gateway_path = gateway_path
        # While set, every gateway handshake is answered with this HTTP status (an outage).
        self.gateway_refusal: int | None = None
        # A session (a shard, or an unsharded bot) in more guilds than this is closed with 4011.
        self.max_guilds_per_shard = max_guilds_per_shard
        self.bots: dict[int, FakeBot] = {}
        self.guilds: dict[int, FakeGuild] = {}
        self.users: dict[int, FakeUser] = {}
        # Sent as VOICE_SERVER_UPDATE's endpoint; nothing listens there.
        self.voice_endpoint = "voice.fake.invalid:443"
        self.requests: list[RecordedRequest] = []
        self.voice_state_updates: list[VoiceStateUpdate] = []
        # Op 4s sent on a shard that does not hold their guild (ignored, as by Discord).
        self.misrouted_voice_updates: list[VoiceStateUpdate] = []
        # Voice channels whose joins Discord never confirms (an outage seen from one channel).
        self.unconfirmed_voice_channels: set[int] = set()
        self._bots_by_token: dict[str, FakeBot] = {}
        self._commands: dict[tuple[int, int | None], list[_Json]] = {}
        self._fail_429: list[_Fail429] = []
        # Path suffix -> gate: matching REST calls wait until it is set (a slow Discord).
        self._held: dict[str, asyncio.Event] = {}
        self._failures: list[_Failure] = []
        self._connections: set[_Connection] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._timers: set[asyncio.Task[None]] = set()  # scheduled crashes; cancelled on close
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._op_handlers: dict[int, _OpHandler] = {
            1: self._on_heartbeat,
            2: self._on_identify,
            3: self._on_presence_update,
            4: self._on_voice_state_update,
            6: self._on_resume,
            8: self._on_request_guild_members,
        }
        self._routes: list[tuple[str, re.Pattern[str], _RestHandler]] = [
            ("GET", re.compile(r"/users/@me"), self._rest_get_me),
            ("GET", re.compile(r"/oauth2/applications/@me"), self._rest_get_application),
            ("GET", re.compile(r"/gateway(?:/bot)?"), self._rest_get_gateway),
            ("GET", re.compile(_CMDS), self._rest_get_commands),
            ("PUT", re.compile(_CMDS), self._rest_put_commands),
            ("GET", re.compile(_CMDS + r"/(?P<cmd>\d+)"), self._rest_get_command),
            ("DELETE", re.compile(_CMDS + r"/(?P<cmd>\d+)"), self._rest_delete_command),
            *self._message_routes(),
        ]
        self._init_interactions()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeDiscord already started")
        app = web.Application()
        app.router.add_get(self.gateway_path, self._gateway_handler)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest_handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info("fake discord listening on 127.0.0.1:%d", self._port)

    async def close(self) -> None:
        self._closing = True  # refuse (re)connections while shutting down
        for timer in list(self._timers):
            timer.cancel()
        for gate in self._held.values():
            gate.set()
        await asyncio.gather(*(c.close(1001) for c in list(self._connections)), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.gateway_path}"

    # ------------------------------------------------------------------ world setup

    def add_bot(
        self, *, name: str | None = None, client_id: int | None = None, token: str | None = None
    ) -> FakeBot:
        client_id = client_id if client_id is not None else _new_snowflake()
        token = token if token is not None else make_fake_token(client_id)
        if client_id in self.bots or token in self._bots_by_token:
            raise ValueError(f"bot with client_id {client_id} or the same token already exists")
        bot = FakeBot(client_id=client_id, name=name or f"Fake Bot {next(_counter)}", token=token)
        self.bots[client_id] = bot
        self._bots_by_token[token] = bot
        return bot

    def add_guild(
        self,
        *,
        guild_id: int | None = None,
        name: str | None = None,
        member_count: int = 10,
        shard: tuple[int, int] | None = None,
        preferred_locale: str = "en-US",
    ) -> FakeGuild:
        """A guild; ``shard=(shard_id, num_shards)`` picks an id that lands on that shard."""
        if guild_id is None:
            guild_id = _new_snowflake()
            if shard is not None:
                while shard_of(guild_id, shard[1]) != shard[0]:  # ids step with the clock (ms)
                    guild_id = _new_snowflake()
        elif shard is not None and shard_of(guild_id, shard[1]) != shard[0]:
            raise ValueError(f"guild {guild_id} is not on shard {shard}")
        if guild_id in self.guilds:
            raise ValueError(f"guild {guild_id} already exists")
        guild = FakeGuild(
            id=guild_id,
            name=name or f"Fake Guild {next(_counter)}",
            member_count=member_count,
            preferred_locale=preferred_locale,
        )
        self.guilds[guild_id] = guild
        return guild

    async def add_bot_to_guild(self, bot: FakeBot, guild_id: int) -> None:
        guild = self._guild(guild_id)
        if guild_id in bot.guild_ids:
            return
        bot.guild_ids.add(guild_id)
        guild.members.setdefault(bot.client_id, FakeMember(bot.client_id))
        for session in self._sessions_for(bot, guild_id):
            await self._dispatch(session, "GUILD_CREATE", self._guild_create(guild, bot, unavailable=None))

    async def remove_bot_from_guild(self, bot: FakeBot, guild_id: int) -> None:
        guild = self._guild(guild_id)
        if guild_id not in bot.guild_ids:
            return
        bot.guild_ids.discard(guild_id)
        for session in self._sessions_for(bot, guild_id):
            await self._dispatch(session, "GUILD_DELETE", {"id": str(guild_id)})
        if guild.voice_state(bot.client_id) is not None:  # kicked bots leave voice too
            state = self._apply_voice(guild, bot.client_id, None)
            await self._flush_all(self._broadcast(guild.id, "VOICE_STATE_UPDATE", state, voice=True))
        guild.members.pop(bot.client_id, None)

    async def end_guild_outage(self, guild_id: int) -> None:
        """The guild comes back: its bots get GUILD_CREATE with ``unavailable: false``
        (discord.py fires ``on_guild_available``)."""
        guild = self._guild(guild_id)
        guild.outage = False
        for bot in self.bots.values():
            if guild_id in bot.guild_ids:
                for session in self._sessions_for(bot, guild_id):
                    await self._dispatch(
                        session, "GUILD_CREATE", self._guild_create(guild, bot, unavailable=False)
                    )

    def recommended_shards(self, bot: FakeBot) -> int:
        """What `GET /gateway/bot` answers: the bot's `shards`, or enough for its guilds."""
        if bot.shards is not None:
            return bot.shards
        return max(1, -(-len(bot.guild_ids) // self.max_guilds_per_shard))

    def shard_sessions(self, bot: FakeBot) -> dict[int | None, str]:
        """The bot's live sessions by shard id (None: unsharded) -> session id."""
        return {
            s.shard_id: s.session_id for s in bot.sessions.values() if s.conn is not None and s.conn.alive
        }

    def _sessions_for(self, bot: FakeBot, guild_id: int | None) -> list[_Session]:
        """The bot's sessions that receive the guild's events (None: DMs and other non-guild ones)."""
        return [s for s in list(bot.sessions.values()) if s.owns(guild_id)]

    def identifies_within(self, bot: FakeBot, start: float, seconds: float) -> int:
        """How many IDENTIFYs of ``bot`` arrived in ``[start, start + seconds]`` (loop time)."""
        return sum(1 for at in bot.identify_times if start <= at <= start + seconds)

    def _guild_create(self, guild: FakeGuild, bot: FakeBot, *, unavailable: bool | None) -> _Json:
        return guild.to_payload(bot, unavailable=unavailable, users=self._user_json)

    # ------------------------------------------------------------------ users, members, roles, channels

    def add_user(self, *, name: str | None = None, user_id: int | None = None) -> FakeUser:
        """A human Discord user (not yet a member of any guild: see add_member)."""
        user_id = user_id if user_id is not None else _new_snowflake()
        if user_id in self.users or user_id in self.bots:
            raise ValueError(f"user {user_id} already exists")
        user = FakeUser(id=user_id, name=name or f"user{next(_counter)}")
        self.users[user_id] = user
        return user

    def add_member(
        self,
        guild_id: int,
        user: FakeUser | FakeBot,
        *,
        roles: Sequence[int] = (),
        permissions: int | None = None,
    ) -> FakeMember:
        """Make ``user`` (or a bot: its roles) a member with ``roles``; set the roles if already one.

        ``permissions`` is a shortcut: a new role with those permissions is created and added.
        The bot whose member changed gets GUILD_MEMBER_UPDATE (other bots: only with the members
        intent).
        """
        guild = self._guild(guild_id)
        if isinstance(user, FakeUser):
            self.users.setdefault(user.id, user)
        role_ids = list(roles)
        unknown = [r for r in role_ids if guild.role(r) is None]
        if unknown:
            raise ValueError(f"guild {guild_id} has no roles {unknown}")
        if permissions is not None:
            role_ids.append(self.add_role(guild_id, f"{user.name} permissions", permissions=permissions))
        member = guild.members.get(user.id)
        if member is None:
            member = guild.members[user.id] = FakeMember(user.id, roles=role_ids)
        else:
            member.roles = role_ids
            self._member_update_soon(guild, user.id)
        return member

    def _ensure_member(self, guild: FakeGuild, user: FakeUser | FakeBot) -> None:
        if user.id not in guild.members:
            self.add_member(guild.id, user)

    def add_role(self, guild_id: int, name: str, *, permissions: int = 0) -> int:
        """A new role (dispatches GUILD_ROLE_CREATE); returns its id."""
        guild = self._guild(guild_id)
        role_id = _new_snowflake()
        role = role_payload(role_id, name, permissions, len(guild.roles))
        guild.roles.append(role)
        self._broadcast_soon(guild_id, "GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": dict(role)})
        return role_id

    def set_role_permissions(self, guild_id: int, role_id: int, permissions: int) -> None:
        """Change a role's permissions (``role_id == guild_id`` is @everyone); GUILD_ROLE_UPDATE."""
        role = self._guild(guild_id).role(role_id)
        if role is None:
            raise KeyError(f"guild {guild_id} has no role {role_id}")
        role["permissions"] = str(permissions)
        self._broadcast_soon(guild_id, "GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": dict(role)})

    def add_text_channel(self, guild_id: int, name: str) -> int:
        return self._add_channel(guild_id, text_channel_payload(name, len(self._guild(guild_id).channels)))

    def add_voice_channel(self, guild_id: int, name: str, *, user_limit: int = 0) -> int:
        position = len(self._guild(guild_id).channels)
        return self._add_channel(guild_id, voice_channel_payload(name, position, user_limit=user_limit))

    def _add_channel(self, guild_id: int, channel: _Json) -> int:
        guild = self._guild(guild_id)
        guild.channels.append(channel)
        channel_id = int(channel["id"])
        self._broadcast_soon(guild_id, "CHANNEL_CREATE", guild.channel_payload(channel_id))
        return channel_id

    def set_permission_overwrite(
        self, guild_id: int, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set the channel's overwrite for a role or member ``target_id`` (CHANNEL_UPDATE).

        ``allow == deny == 0`` removes it.
        """
        guild = self._guild(guild_id)
        channel = guild.channel(channel_id)
        if channel is None:
            raise KeyError(f"guild {guild_id} has no channel {channel_id}")
        overwrite_type = 0 if guild.role(target_id) is not None else 1
        overwrites = [o for o in channel["permission_overwrites"] if int(o["id"]) != target_id]
        if allow or deny:
            overwrites.append(
                {"id": str(target_id), "type": overwrite_type, "allow": str(allow), "deny": str(deny)}
            )
        channel["permission_overwrites"] = overwrites
        self._broadcast_soon(guild_id, "CHANNEL_UPDATE", guild.channel_payload(channel_id))

    def deny_bot_permissions(self, guild_id: int, bot: FakeBot, channel_id: int, permissions: int) -> None:
        """Add ``permissions`` to the deny bits of the bot's member overwrite in the channel."""
        channel = self._guild(guild_id).channel(channel_id)
        if channel is None:
            raise KeyError(f"guild {guild_id} has no channel {channel_id}")
        current = next((o for o in channel["permission_overwrites"] if int(o["id"]) == bot.client_id), None)
        allow = int(current["allow"]) if current else 0
        deny = int(current["deny"]) if current else 0
        self.set_permission_overwrite(
            guild_id, channel_id, bot.client_id, allow=allow & ~permissions, deny=deny | permissions
        )

    def _user_json(self, user_id: int) -> _Json:
        bot = self.bots.get(user_id)
        if bot is not None:
            return bot.user_payload()
        user = self.users.get(user_id)
        return (user or FakeUser(user_id, f"user{user_id}")).user_payload()

    def _member_update_soon(self, guild: FakeGuild, user_id: int) -> None:
        member = guild.members[user_id]
        data = {**member.payload(self._user_json(user_id)), "guild_id": str(guild.id)}
        sessions = self._guild_sessions(guild.id, intent=_INTENT_GUILD_MEMBERS, self_id=user_id)
        for session in sessions:
            self._enqueue(session, "GUILD_MEMBER_UPDATE", data)
        self._flush_soon(sessions)

    # ------------------------------------------------------------------ voice

    async def set_user_voice(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int | None,
        *,
        user: FakeUser | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        """A user joins (moves to) ``channel_id``, or leaves voice with ``None``.

        Every bot in the guild (with the voice_states intent) gets VOICE_STATE_UPDATE.  Works for a
        bot's id too (a moderator moving/disconnecting it; no VOICE_SERVER_UPDATE is sent).
        """
        guild = self._guild(guild_id)
        if user is not None:
            if user.id != user_id:
                raise ValueError("user.id and user_id differ")
            self.users.setdefault(user.id, user)
        bot = self.bots.get(user_id)
        if bot is not None:
            if guild_id not in bot.guild_ids:
                raise ValueError(f"bot {bot.name} is not in guild {guild_id}")
        else:
            self._ensure_member(guild, self.users.get(user_id) or self.add_user(user_id=user_id))
        if channel_id is not None:
            channel = guild.channel(channel_id)
            if channel is None or channel["type"] not in _VOICE_CHANNEL_TYPES:
                raise ValueError(f"{channel_id} is not a voice channel of guild {guild_id}")
        state = self._apply_voice(guild, user_id, channel_id, self_mute=self_mute, self_deaf=self_deaf)
        await self._flush_all(self._broadcast(guild_id, "VOICE_STATE_UPDATE", state, voice=True))

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        state = self._guild(guild_id).voice_state(user_id)
        return int(state["channel_id"]) if state is not None else None

    def users_in_voice(self, guild_id: int, channel_id: int) -> set[int]:
        return {
            int(v["user_id"])
            for v in self._guild(guild_id).voice_states
            if int(v["channel_id"]) == channel_id
        }

    def _apply_voice(
        self,
        guild: FakeGuild,
        user_id: int,
        channel_id: int | None,
        *,
        session_id: str | None = None,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> _Json:
        """Store (or forget) the user's voice state; returns the VOICE_STATE_UPDATE payload."""
        previous = guild.voice_state(user_id)
        if session_id is None:
            session_id = previous["session_id"] if previous is not None else secrets.token_hex(16)
        state: _Json = {
            "guild_id": str(guild.id),
            "channel_id": str(channel_id) if channel_id is not None else None,
            "user_id": str(user_id),
            "session_id": session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self_deaf,
            "self_mute": self_mute,
            "self_video": False,
            "self_stream": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        guild._set_voice_state(user_id, state if channel_id is not None else None)
        member = guild.members.get(user_id) or FakeMember(user_id)
        return {**state, "member": member.payload(self._user_json(user_id))}

    # ------------------------------------------------------------------ dispatch helpers

    def _guild_sessions(
        self,
        guild_id: int,
        *,
        intent: int | None = None,
        self_id: int | None = None,
        exclude: int | None = None,
    ) -> list[_Session]:
        """Sessions of the bots in the guild; with ``intent`` only bots that asked for it (and the
        bot ``self_id``, which always hears about itself)."""
        sessions: list[_Session] = []
        for bot in self.bots.values():
            if guild_id not in bot.guild_ids or bot.client_id == exclude:
                continue
            intents = bot.last_identify_intents
            if (
                intent is not None
                and bot.client_id != self_id
                and intents is not None
                and not intents & intent
            ):
                continue
            sessions.extend(self._sessions_for(bot, guild_id))
        return sessions

    def _broadcast(
        self, guild_id: int, event: str, data: _Json, *, voice: bool = False, exclude: int | None = None
    ) -> list[_Session]:
        """Number ``event`` for every bot in the guild (voice: bots with that intent, and the user
        itself); the caller flushes the returned sessions."""
        intent = _INTENT_GUILD_VOICE_STATES if voice else None
        self_id = int(data["user_id"]) if voice else None
        sessions = self._guild_sessions(guild_id, intent=intent, self_id=self_id, exclude=exclude)
        for session in sessions:
            self._enqueue(session, event, data)
        return sessions

    def _broadcast_soon(self, guild_id: int, event: str, data: _Json) -> None:
        """For synchronous world changes: numbered now (so in order), written in the background."""
        self._flush_soon(self._broadcast(guild_id, event, data))

    async def drain(self) -> None:
        """Wait until every dispatch queued by a synchronous hook has been written."""
        for bot in list(self.bots.values()):
            for session in list(bot.sessions.values()):
                await self._flush(session)
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def revoke_token(self, bot: FakeBot) -> None:
        bot.revoked = True
        conns = [s.conn for s in bot.sessions.values() if s.conn is not None]
        bot.sessions.clear()
        await asyncio.gather(*(c.close(4004) for c in conns), return_exceptions=True)
        await self._notify()

    def set_token(self, bot: FakeBot, token: str) -> None:
        """The Developer Portal's "reset token": the old token stops working (REST 401, IDENTIFY
        4004); the new one logs in as the same bot. Live sessions are left alone."""
        if token in self._bots_by_token:
            raise ValueError("that token already belongs to a bot")
        self._bots_by_token.pop(bot.token, None)
        bot.token = token
        bot.revoked = False
        self._bots_by_token[token] = bot

    def _shard_sessions(self, bot: FakeBot, shard: int | None) -> list[_Session]:
        return [s for s in list(bot.sessions.values()) if shard is None or s.shard_id == shard]

    async def disconnect(self, bot: FakeBot, *, code: int = 4000, shard: int | None = None) -> None:
        """Force-close the bot's live connection(s) (only ``shard``'s, if given); with the default
        code discord.py RESUMEs."""
        sessions = self._shard_sessions(bot, shard)
        conns = [s.conn for s in sessions if s.conn is not None]
        if code in _NON_RESUMABLE_CODES:
            for session in sessions:
                bot.sessions.pop(session.session_id, None)
        await asyncio.gather(*(c.close(code) for c in conns), return_exceptions=True)

    async def invalidate_session(self, bot: FakeBot, *, shard: int | None = None) -> None:
        """Op 9 with ``d: false`` on the bot's live connection(s) (only ``shard``'s, if given): its
        session is gone, so discord.py re-identifies inside the same client (and clears its state,
        voice clients included)."""
        sessions = self._shard_sessions(bot, shard)
        conns = [s.conn for s in sessions if s.conn is not None]
        for session in sessions:
            bot.sessions.pop(session.session_id, None)
        for conn in conns:
            conn.session = None
            await conn.send_json({"op": 9, "d": False})

    async def send_heartbeat_ack(self, bot: FakeBot, *, shard: int | None = None) -> int:
        """An unsolicited HEARTBEAT_ACK (op 11) on the bot's live connection(s): what a client
        sees when an ACK is duplicated, or arrives before it recorded its heartbeat as sent.
        Returns the number of connections it went to."""
        conns = [s.conn for s in self._shard_sessions(bot, shard) if s.conn is not None]
        sent = await asyncio.gather(*(conn.send_json({"op": 11, "d": None}) for conn in conns))
        return sum(sent)

    async def dispatch(self, bot: FakeBot, event: str, data: _Json) -> int:
        """Send a dispatch (op 0) event to ``bot``: to the shard of its ``guild_id`` (shard 0
        without one), or to every session of an unsharded bot; returns the number of sessions."""
        guild_id = data.get("guild_id")
        sessions = self._sessions_for(bot, int(guild_id) if guild_id is not None else None)
        for session in sessions:
            await self._dispatch(session, event, data)
        return len(sessions)

    def is_connected(self, bot: FakeBot) -> bool:
        return any(s.conn is not None and s.conn.alive for s in bot.sessions.values())

    def live_sessions(self, bot: FakeBot) -> int:
        """How many sessions of the bot (of its busiest shard) have an open connection now."""
        live = Counter(_shard_key(s) for s in bot.sessions.values() if s.conn is not None and s.conn.alive)
        return max(live.values(), default=0)

    def _count_sessions(self, bot: FakeBot) -> None:
        bot.max_concurrent_sessions = max(bot.max_concurrent_sessions, self.live_sessions(bot))

    async def wait_for_identify(self, bot: FakeBot, count: int = 1, timeout: float = 30.0) -> None:
        await self._wait_until(
            lambda: bot.identify_count >= count, timeout, f"{count} IDENTIFY of {bot.name}"
        )

    async def wait_for_resume(self, bot: FakeBot, count: int = 1, timeout: float = 30.0) -> None:
        await self._wait_until(lambda: bot.resume_count >= count, timeout, f"{count} RESUME of {bot.name}")

    def fail_next_with_429(
        self, path_suffix: str, times: int = 1, retry_after: float = 0.05, *, method: str | None = None
    ) -> None:
        """Answer the next ``times`` REST calls whose path ends with ``path_suffix`` with a 429.

        discord.py sleeps ``retry_after`` and retries transparently.  ``method`` limits it to one verb.
        """
        self._fail_429.append(_Fail429(path_suffix, times, retry_after, method.upper() if method else None))

    def hold_rest(self, path_suffix: str) -> asyncio.Event:
        """REST calls whose path ends with ``path_suffix`` wait until the returned event is set."""
        gate = self._held[path_suffix] = asyncio.Event()
        return gate

    async def wait_for_request(self, path_suffix: str, timeout: float = 30.0) -> None:
        """Until a REST call whose path ends with ``path_suffix`` has arrived."""
        await self._wait_until(
            lambda: any(r.path.endswith(path_suffix) for r in self.requests),
            timeout,
            f"a call to {path_suffix}",
        )

    def fail_next(
        self, path_suffix: str, *, status: int, body: _Json, times: int = 1, method: str | None = None
    ) -> None:
        """Answer the next ``times`` REST calls whose path ends with ``path_suffix`` with ``status``
        and ``body`` (an upstream error whose text the service must not repeat verbatim)."""
        self._failures.append(_Failure(path_suffix, times, method.upper() if method else None, status, body))

    def get_commands(self, app_id: int, guild_id: int | None = None) -> list[_Json]:
        return [dict(c) for c in self._commands.get((app_id, guild_id), [])]

    def _guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown fake guild {guild_id}; call add_guild() first") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(f"fake discord: timed out waiting for {what}") from None

    # ------------------------------------------------------------------ gateway

    async def gateway_outage(self, status: int = 503) -> None:
        """The gateway goes down: open connections close (1001, discord.py resumes) and every
        handshake is answered with `status` until `gateway_restored()`."""
        self.gateway_refusal = status
        await asyncio.gather(*(c.close(1001) for c in list(self._connections)), return_exceptions=True)

    def gateway_restored(self) -> None:
        self.gateway_refusal = None

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            return _error(503, "503: Service Unavailable")
        if self.gateway_refusal is not None:
            return _error(self.gateway_refusal, f"{self.gateway_refusal}: gateway unavailable")
        ws = web.WebSocketResponse(timeout=2.0, compress=False, max_msg_size=0)
        await ws.prepare(request)
        conn = _Connection(ws)
        self._connections.add(conn)
        try:
            await conn.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    await conn.close(4002)  # decode error: we only speak JSON text frames
                    break
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    payload = None
                if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
                    await conn.close(4002)
                    break
                await self._handle_payload(conn, payload["op"], payload.get("d"))
                if conn.server_close_code is not None:
                    break
        except Exception:
            _log.exception("fake gateway: connection handler failed")
        finally:
            self._connections.discard(conn)
            await self._detach(conn)
        return ws

    async def _handle_payload(self, conn: _Connection, op: int, data: Any) -> None:
        handler = self._op_handlers.get(op)
        if handler is None:
            await conn.close(4001)  # unknown opcode
        elif conn.session is None and op not in (1, 2, 6):
            await conn.close(4003)  # not authenticated
        else:
            await handler(conn, data)

    async def _detach(self, conn: _Connection) -> None:
        session = conn.session
        conn.session = None
        if session is not None and session.conn is conn:
            session.conn = None
            client_code = conn.ws.close_code if conn.server_close_code is None else None
            session.bot.client_closes.append(client_code)
            if client_code in _CLIENT_CLEAN_CLOSE_CODES:  # the client logged out: session is over
                session.bot.sessions.pop(session.session_id, None)
            _log.debug("fake gateway: bot %s disconnected", session.bot.client_id)
        await self._notify()

    async def _dispatch(self, session: _Session, event: str, data: _Json) -> None:
        self._enqueue(session, event, data)
        await self._flush(session)

    def _enqueue(self, session: _Session, event: str, data: _Json) -> None:
        """Give the event its sequence number now; it is written, in order, by ``_flush``."""
        session.seq += 1
        payload = {"op": 0, "s": session.seq, "t": event, "d": data}
        session.history.append(payload)
        if session.conn is not None:
            session.outbox.append(payload)

    async def _flush(self, session: _Session) -> None:
        # Popping and calling send_json without an await in between keeps concurrent flushers in
        # sequence order: the connection's lock queues its writers first come, first served.
        while session.outbox:
            payload = session.outbox.popleft()
            conn = session.conn
            if conn is None:  # gone: the history replays it on RESUME
                session.outbox.clear()
                return
            await conn.send_json(payload)

    async def _flush_all(self, sessions: Sequence[_Session]) -> None:
        for session in sessions:
            await self._flush(session)

    def _flush_soon(self, sessions: Sequence[_Session]) -> None:
        pending = [s for s in sessions if s.outbox]
        if pending:
            task = asyncio.get_running_loop().create_task(self._flush_all(pending))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _on_heartbeat(self, conn: _Connection, data: Any) -> None:
        if self.ack_heartbeats:
            await conn.send_json({"op": 11, "d": None})

    async def _on_identify(self, conn: _Connection, data: Any) -> None:
        if conn.session is not None:
            await conn.close(4005)  # already authenticated
            return
        bot = self._bot_for_gateway_token(data)
        if bot is None:
            await conn.close(4004)
            return
        intents = data.get("intents")
        bot.last_identify_intents = intents if isinstance(intents, int) else None
        if bot.identify_close_code is not None:
            await conn.close(bot.identify_close_code)
            return
        try:
            shard = _identify_shard(data.get("shard"))
        except ValueError:
            await conn.close(4010)  # invalid shard
            return
        session = _Session(session_id=secrets.token_hex(16), bot=bot, shard=shard, conn=conn)
        guilds = [self.guilds[gid] for gid in sorted(bot.guild_ids) if session.owns(gid)]
        if len(guilds) > self.max_guilds_per_shard:
            bot.sharding_required_closes += 1
            await conn.close(4011)  # sharding required
            await self._notify()
            return
        bot.identify_count += 1
        bot.identify_shards.append(shard)
        for stale_id in [sid for sid, s in bot.sessions.items() if s.conn is None and s.shard == shard]:
            del bot.sessions[stale_id]
        bot.sessions[session.session_id] = session
        conn.session = session
        _log.debug("fake gateway: bot %s identified (shard %s)", bot.client_id, shard)
        ready = {
            "v": 10,
            "user": bot.user_payload(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(bot.client_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "user_settings": {},
        }
        if shard is not None:
            ready["shard"] = list(shard)
        bot.identify_times.append(asyncio.get_running_loop().time())
        self._count_sessions(bot)
        await self._dispatch(session, "READY", ready)
        for guild in guilds:
            if not guild.outage:
                await self._dispatch(
                    session, "GUILD_CREATE", self._guild_create(guild, bot, unavailable=False)
                )
        if bot.crash_after_ready is not None:
            timer = asyncio.get_running_loop().create_task(
                self._crash_later(session, conn, bot.crash_after_ready)
            )
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        await self._notify()

    async def _crash_later(self, session: _Session, conn: _Connection, delay: float) -> None:
        await asyncio.sleep(delay)
        if session.conn is not conn or not conn.alive:
            return
        if session.bot.crash_close_code is not None:
            if session.bot.crash_close_code in _NON_RESUMABLE_CODES:
                session.bot.sessions.pop(session.session_id, None)
            await conn.close(session.bot.crash_close_code)
            return
        guild = FakeGuild(id=_new_snowflake(), name="Unparseable")
        payload = guild.to_payload(session.bot, unavailable=None)
        del payload["channels"][0]["name"]  # discord.py's TextChannel raises KeyError('name')
        await self._dispatch(session, "GUILD_CREATE", payload)

    async def _on_resume(self, conn: _Connection, data: Any) -> None:
        bot = self._bot_for_gateway_token(data)
        if bot is None:
            await conn.close(4004)
            return
        session = bot.sessions.get(str(data.get("session_id")))
        if session is None or conn.session is not None:
            await conn.send_json({"op": 9, "d": False})
            return
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
            task = asyncio.ensure_future(old.close(4000))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        session.conn = conn
        conn.session = session
        session.outbox.clear()  # never written; the replay below covers them
        bot.resume_count += 1
        self._count_sessions(bot)
        _log.debug("fake gateway: bot %s resumed", bot.client_id)
        seen = data.get("seq")
        seen = seen if isinstance(seen, int) else 0
        for payload in [p for p in session.history if p["s"] > seen]:
            await conn.send_json(payload)
        await self._dispatch(session, "RESUMED", {})
        await self._notify()

    async def _on_presence_update(self, conn: _Connection, data: Any) -> None:
        return None

    async def _on_voice_state_update(self, conn: _Connection, data: Any) -> None:
        """Record op 4, then answer as Discord does.

        Joining/moving: VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE to the bot, and the
        VOICE_STATE_UPDATE to the other bots of the guild.  Leaving (``channel_id`` null):
        VOICE_STATE_UPDATE with a null channel to all of them.  Like Discord, a request for a
        channel the bot cannot see or connect to (or that is full) gets no answer at all.
        """
        assert conn.session is not None
        raw: _Json = dict(data) if isinstance(data, dict) else {}
        try:
            channel_id = raw.get("channel_id")
            update = VoiceStateUpdate(
                client_id=conn.session.bot.client_id,
                guild_id=int(raw["guild_id"]),
                channel_id=int(channel_id) if channel_id is not None else None,
                self_mute=bool(raw.get("self_mute", False)),
                self_deaf=bool(raw.get("self_deaf", False)),
                raw=raw,
            )
        except (KeyError, TypeError, ValueError):
            await conn.close(4002)  # decode error
            return
        self.voice_state_updates.append(update)
        await self._notify()
        await self._answer_voice_state_update(conn.session, update)

    async def _answer_voice_state_update(self, session: _Session, update: VoiceStateUpdate) -> None:
        bot = session.bot
        guild = self.guilds.get(update.guild_id)
        if guild is None or update.guild_id not in bot.guild_ids:
            return
        if not session.owns(update.guild_id):
            # Sent on a shard that does not hold the guild: Discord does not act on it.
            _log.warning("fake gateway: op 4 for guild %s on shard %s", update.guild_id, session.shard)
            self.misrouted_voice_updates.append(update)
            await self._notify()
            return
        channel_id = update.channel_id
        if channel_id is not None and channel_id in self.unconfirmed_voice_channels:
            return
        if channel_id is not None:
            channel = guild.channel(channel_id)
            if channel is None or channel["type"] not in _VOICE_CHANNEL_TYPES:
                return
            perms = guild.permissions_of(bot.client_id, channel_id)
            if not (perms & Permission.VIEW_CHANNEL and perms & Permission.CONNECT):
                return
            limit = int(channel.get("user_limit") or 0)
            others = self.users_in_voice(guild.id, channel_id) - {bot.client_id}
            if limit and len(others) >= limit and not perms & Permission.MOVE_MEMBERS:
                return
        was_in_voice = guild.voice_state(bot.client_id) is not None
        state = self._apply_voice(
            guild,
            bot.client_id,
            channel_id,
            session_id=session.session_id,
            self_mute=update.self_mute,
            self_deaf=update.self_deaf,
        )
        await self.dispatch(bot, "VOICE_STATE_UPDATE", state)
        if channel_id is not None:
            server = {
                "token": secrets.token_hex(8),
                "guild_id": str(guild.id),
                "endpoint": self.voice_endpoint,
            }
            await self.dispatch(bot, "VOICE_SERVER_UPDATE", server)
        if channel_id is not None or was_in_voice:  # others never saw it join: nothing to tell them
            others = self._broadcast(guild.id, "VOICE_STATE_UPDATE", state, voice=True, exclude=bot.client_id)
            await self._flush_all(others)

    async def _on_request_guild_members(self, conn: _Connection, data: Any) -> None:
        """Answer a member chunk request with an empty chunk (bots here do not cache members)."""
        assert conn.session is not None
        if not isinstance(data, dict):
            return
        chunk = {"guild_id": str(data.get("guild_id")), "members": [], "chunk_index": 0, "chunk_count": 1}
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._dispatch(conn.session, "GUILD_MEMBERS_CHUNK", chunk)

    def _bot_for_gateway_token(self, data: Any) -> FakeBot | None:
        token = data.get("token") if isinstance(data, dict) else None
        bot = self._bots_by_token.get(token) if isinstance(token, str) else None
        return None if bot is None or bot.revoked else bot

    # ------------------------------------------------------------------ REST

    async def _rest_handler(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await self._read_body(request)
        auth = request.headers.get("Authorization", "")
        bot = self._bots_by_token.get(auth[4:]) if auth.startswith("Bot ") else None
        if bot is not None and bot.revoked:
            bot = None
        record = RecordedRequest(request.method, path, bot.client_id if bot else None, body)
        self.requests.append(record)
        gate = next((gate for suffix, gate in self._held.items() if path.endswith(suffix)), None)
        if gate is not None:
            await self._notify()  # the request is recorded: a test may now act while it waits
            await gate.wait()
        response = self._route(request.method, path, bot, body, request.query, record)
        record.status = response.status
        await self._notify()
        return response

    @staticmethod
    async def _read_body(request: web.Request) -> Any:
        """JSON, or a multipart body's ``payload_json`` (uploaded files become attachment sizes)."""
        if not request.can_read_body:
            return None
        if request.content_type != "multipart/form-data":
            try:
                return await request.json()
            except ValueError:
                return None
        body: Any = None
        files: dict[str, tuple[int, str | None]] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            raw = await part.read()
            if part.name == "payload_json":
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            elif part.name and (found := re.fullmatch(r"files\[(\d+)\]", part.name)):
                files[found[1]] = (len(raw), part.headers.get("Content-Type"))
        if isinstance(body, dict):
            inner = body.get("data")
            data: dict[str, Any] = inner if isinstance(inner, dict) else body
            for attachment in data.get("attachments") or []:
                size, content_type = files.get(str(attachment.get("id")), (None, None))
                if size is not None:
                    attachment.setdefault("size", size)
                    attachment.setdefault("content_type", content_type)
        return body

    def _route(
        self,
        method: str,
        path: str,
        bot: FakeBot | None,
        body: Any,
        query: Mapping[str, str] | None = None,
        record: RecordedRequest | None = None,
    ) -> web.Response:
        for fail in self._fail_429:
            matches = path.endswith(fail.path_suffix) or f"/api/v10{path}".endswith(fail.path_suffix)
            if fail.remaining > 0 and matches and fail.method in (None, method):
                fail.remaining -= 1
                retry = fail.retry_after
                data = {"message": "You are being rate limited.", "retry_after": retry, "global": False}
                # discord.py treats a 429 without a Via header as a Cloudflare ban, so send one.
                headers = {"Retry-After": str(retry), "X-RateLimit-Scope": "user", "Via": "1.1 google"}
                return _json_response(data, status=429, headers=headers)
        self._fail_429 = [f for f in self._fail_429 if f.remaining > 0]
        for failure in self._failures:
            matches = path.endswith(failure.path_suffix) or f"/api/v10{path}".endswith(failure.path_suffix)
            if failure.remaining > 0 and matches and failure.method in (None, method):
                failure.remaining -= 1
                return _json_response(failure.body, status=failure.status)
        self._failures = [f for f in self._failures if f.remaining > 0]
        # Interaction callbacks and webhooks are authorised by the interaction token in the path.
        routed = self._webhook_route(method, path, body, query or {})
        if routed is not None:
            interaction, response = routed
            if record is not None and interaction is not None:
                record.client_id = interaction.bot.client_id
            return response
        if bot is None:
            return _error(401, "401: Unauthorized")
        path_matched = False
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if route_method == method:
                return handler(bot, match, body)
        if path_matched:
            return _error(405, "405: Method Not Allowed")
        return _error(404, "404: Not Found")

    def _rest_get_me(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        return _json_response(bot.user_payload())

    def _rest_get_application(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        owner = {"id": "1", "username": "owner", "discriminator": "0", "global_name": None, "avatar": None}
        return _json_response(
            {
                "id": str(bot.client_id),
                "name": bot.name,
                "icon": None,
                "description": "",
                "summary": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "bot": bot.user_payload(),
                "flags": 0,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(bot.guild_ids),
            }
        )

    def _rest_get_gateway(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        remaining = max(0, 1000 - bot.identify_count)
        limit = {"total": 1000, "remaining": remaining, "reset_after": 0, "max_concurrency": 1}
        shards = self.recommended_shards(bot)
        return _json_response({"url": self.gateway_url, "shards": shards, "session_start_limit": limit})

    def _command_scope(self, bot: FakeBot, match: re.Match[str]) -> tuple[int, int | None] | web.Response:
        app_id = int(match["app"])
        guild_id = int(match["guild"]) if match["guild"] else None
        if app_id != bot.client_id or (guild_id is not None and guild_id not in bot.guild_ids):
            return _error(403, "Missing Access", 50001)
        return app_id, guild_id

    def _rest_get_commands(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        scope = self._command_scope(bot, match)
        if isinstance(scope, web.Response):
            return scope
        return _json_response(self._commands.get(scope, []))

    def _rest_put_commands(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        scope = self._command_scope(bot, match)
        if isinstance(scope, web.Response):
            return scope
        items: list[Any] = body if isinstance(body, list) else []
        valid = all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in items)
        if not isinstance(body, list) or not valid:
            return _error(400, "Invalid Form Body", 50035)
        app_id, guild_id = scope
        old_ids = {(c["name"], c["type"]): c["id"] for c in self._commands.get(scope, [])}
        stored: list[_Json] = []
        for item in items:
            command: _Json = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **item,
            }
            key = (command["name"], command["type"])
            command["id"] = old_ids.get(key) or str(_new_snowflake())
            command["application_id"] = str(app_id)
            command["version"] = str(_new_snowflake())
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            stored.append(command)
        self._commands[scope] = stored
        return _json_response(stored)

    def _find_command(self, bot: FakeBot, match: re.Match[str]) -> tuple[list[_Json], _Json] | web.Response:
        scope = self._command_scope(bot, match)
        if isinstance(scope, web.Response):
            return scope
        commands = self._commands.get(scope, [])
        for command in commands:
            if command["id"] == match["cmd"]:
                return commands, command
        return _error(404, "Unknown application command", 10063)

    def _rest_get_command(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        found = self._find_command(bot, match)
        return found if isinstance(found, web.Response) else _json_response(found[1])

    def _rest_delete_command(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        found = self._find_command(bot, match)
        if isinstance(found, web.Response):
            return found
        commands, command = found
        commands.remove(command)
        return web.Response(status=204)


def _identify_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard``: None when absent; ValueError when invalid (Discord closes with 4010)."""
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] < value[1]
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"invalid shard {value!r}")
