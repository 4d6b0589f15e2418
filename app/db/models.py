"""Beanie documents. None of them ever holds a plaintext token."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import pymongo
from beanie import Document, Indexed, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import IndexModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class MusicBot(Document):
    """One Discord bot of the fleet."""

    name: str
    client_id: Annotated[int, Indexed(unique=True)]
    token_ciphertext: str = Field(repr=False)
    token_fingerprint: Annotated[str, Indexed(unique=True)] = Field(repr=False)
    enabled: bool = True
    owner_id: int | None = None
    dev_guild_id: int | None = None
    # This bot offers /clone (with CLONE_ENABLED); clones themselves do not unless marked.
    can_clone: bool = False
    guild_count: int = 0
    user_count: int = 0
    # Per-bot music limits; None falls back to MUSIC_QUEUE_LIMIT / MUSIC_MAX_TRACK_SECONDS.
    queue_limit: int | None = None
    max_track_seconds: int | None = None
    # Most guilds this bot is offered to by invites; None falls back to BOT_GUILD_CAP.
    guild_cap: int | None = None
    # Gateway shards; None: automatic (see app/bots/sharding.py), 1 forces one connection.
    shard_count: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "music_bots"
        indexes = [
            IndexModel([("enabled", pymongo.ASCENDING)]),
            # Invites walk the enabled network bots least loaded first (queries.invite_candidates).
            IndexModel(
                [
                    ("enabled", pymongo.ASCENDING),
                    ("owner_id", pymongo.ASCENDING),
                    ("guild_count", pymongo.ASCENDING),
                    ("created_at", pymongo.ASCENDING),
                ],
                name="invite_candidates",
            ),
        ]


class ServerStatus(StrEnum):
    PENDING_INVITE = "PENDING_INVITE"
    ACTIVE = "ACTIVE"
    REMOVED = "REMOVED"
    FAILED = "FAILED"


class ServerMusicBot(Document):
    """The relation of one bot to one guild (a Discord "server")."""

    server_id: int
    music_bot_id: PydanticObjectId
    status: ServerStatus
    activated_at: datetime | None = None
    removed_at: datetime | None = None
    reason: str | None = None
    # The lease epoch of the owner that last wrote it: an older owner's writes are fenced off.
    epoch: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "server_music_bots"
        indexes = [
            IndexModel(
                [("server_id", pymongo.ASCENDING), ("music_bot_id", pymongo.ASCENDING)],
                unique=True,
                name="server_bot_unique",
            ),
            IndexModel([("music_bot_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)]),
            # Pending invites by bot (every invite), and their expiry sweep.
            IndexModel(
                [("status", pymongo.ASCENDING), ("music_bot_id", pymongo.ASCENDING)], name="status_bot"
            ),
        ]


class BotIdentifyLog(Document):
    """Recent gateway IDENTIFYs of one bot, to stay far from Discord's 1000-per-day reset."""

    client_id: Annotated[int, Indexed(unique=True)]
    timestamps: list[datetime] = Field(default_factory=list)

    class Settings:
        name = "bot_identify_log"


class GuildSettings(Document):
    """Per-guild music settings of ONE bot: two bots in a guild never share or overwrite them."""

    bot_id: int
    guild_id: int
    dj_role_id: int | None = None
    announce_now_playing: bool = True
    stay_24_7: bool = False
    # The voice channel's status shows the current track (needs Set Voice Channel Status).
    channel_status: bool = True
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "guild_settings"
        indexes = [
            IndexModel(
                [("bot_id", pymongo.ASCENDING), ("guild_id", pymongo.ASCENDING)],
                unique=True,
                name="bot_guild_unique",
            )
        ]


class SavedTrack(BaseModel):
    """A track as Lavalink described it (rebuilt without a network call) and who asked for it."""

    data: dict[str, Any]
    extras: dict[str, Any] = Field(default_factory=dict)


class PlayerSnapshot(Document):
    """What one bot was playing in one guild, to resume it after a restart."""

    bot_id: int
    guild_id: int
    voice_channel_id: int
    text_channel_id: int | None = None
    current: SavedTrack | None = None
    position_ms: int = 0
    queue: list[SavedTrack] = Field(default_factory=list)
    queue_mode: str = "normal"
    autoplay: str = "partial"
    volume: int = 100
    filter_preset: str = "reset"
    paused: bool = False
    # The last played tracks, oldest first (at most HISTORY_SIZE), for /history and /previous.
    history: list[SavedTrack] = Field(default_factory=list)
    # The now-playing controller message, so a restored player keeps updating the same one.
    controller_message_id: int | None = None
    saved_at: datetime = Field(default_factory=utcnow)
    # The lease epoch of the owner that saved it: an older owner's saves are fenced off.
    epoch: int = 0

    class Settings:
        name = "player_snapshots"
        indexes = [
            IndexModel(
                [("bot_id", pymongo.ASCENDING), ("guild_id", pymongo.ASCENDING)],
                unique=True,
                name="bot_guild_unique",
            )
        ]


class WorkerState(StrEnum):
    ACTIVE = "active"
    DRAINING = "draining"  # shutting down: handing its bots over, claims nothing


class WorkerRecord(Document):
    """One `chorus serve` process of the fleet (docs/SCALING.md). Written by that worker only
    (registration, one heartbeat per interval, draining) and deleted by it on a clean exit, or
    by another worker that observed its heartbeat stand still for LEASE_TTL."""

    id: str  # type: ignore[assignment]  # "host:pid:random", never reused
    address: str
    host: str
    pid: int
    # The database server's time ($currentDate): orders workers the same way for everyone.
    started_at: datetime | None = None
    heartbeat: int = 0  # only ever incremented: unchanged between two reads means "no heartbeat"
    heartbeat_at: datetime | None = None  # for people reading the collection; nobody compares it
    capacity: int | None = None
    state: WorkerState = WorkerState.ACTIVE
    # Refreshed by each heartbeat (same write): what /health sums over the fleet.
    bots: int = 0
    lavalink_connected: int = 0
    lavalink_total: int = 0

    class Settings:
        name = "workers"


class LeaseStatus(BaseModel):
    """A bot's state as its owner last published it (on a change; latency at most once a minute,
    once it moved noticeably: see app/bots/fleet/status.py)."""

    state: str
    since: datetime
    guilds: int = 0
    users: int = 0
    latency_ms: float | None = None
    last_error: str | None = None
    identifies_24h: int = 0
    # Starting or reconnecting for longer than HEALTH_RECONNECT_THRESHOLD, as its owner measures.
    stuck: bool = False
    shards: int = 1  # gateway connections (shards) the owner runs the bot with


class BotLease(Document):
    """The right to run one bot: only the worker named `owner` runs it (docs/SCALING.md).

    `epoch` grows by one with every claim; the owner's writes that must not come from a stale
    owner (player snapshots, guild records) carry it."""

    id: int  # type: ignore[assignment]  # the bot's client id
    owner: str | None = None
    epoch: int = 0
    acquired_at: datetime | None = None
    # Bumped by `POST /bots/{id}/restart` on any worker; the owner restarts the bot.
    restarts: int = 0
    status: LeaseStatus | None = None

    class Settings:
        name = "bot_leases"
        indexes = [IndexModel([("owner", pymongo.ASCENDING)])]


class VoiceAssignment(Document):
    """Which bot serves one voice channel, fleet-wide (docs/SCALING.md, "Routing across workers").

    Taken before a bot joins, deleted when its player leaves; a bot's new owner deletes the rows
    an older epoch left. The unique `(guild, channel)` index is what keeps two bots (on any
    workers) out of one channel; `(guild, bot)`: a bot is in one voice channel per guild."""

    guild_id: int
    channel_id: int
    bot_id: int
    worker: str | None = None  # the worker that took it (for people reading the collection)
    epoch: int = 0  # the bot's lease epoch: an older owner's writes are fenced off
    since: datetime | None = None  # the database server's time ($currentDate)

    class Settings:
        name = "voice_assignments"
        indexes = [
            IndexModel(
                [("guild_id", pymongo.ASCENDING), ("channel_id", pymongo.ASCENDING)],
                unique=True,
                name="guild_channel_unique",
            ),
            IndexModel(
                [("guild_id", pymongo.ASCENDING), ("bot_id", pymongo.ASCENDING)],
                unique=True,
                name="guild_bot_unique",
            ),
            IndexModel([("bot_id", pymongo.ASCENDING)]),
        ]


class RequestStatus(StrEnum):
    PENDING = "pending"  # waiting for the acting bot's worker
    TAKEN = "taken"  # claimed by it: it answers the interaction
    CANCELLED = "cancelled"  # nobody claimed in time: the receiving worker answered


# An interaction token lives 15 minutes: a forwarded request is worthless after that.
FLEET_REQUEST_TTL = 15 * 60


class FleetRequest(Document):
    """An interaction received by one worker for a bot another worker runs (forwarding)."""

    target_bot: int
    target_worker: str
    payload: dict[str, Any]  # the raw gateway INTERACTION_CREATE data
    status: RequestStatus = RequestStatus.PENDING
    # The receiving bot had already deferred (a race lost after a slow search): the acting bot
    # answers with a followup; `public_defer`: its "thinking…" placeholder is public.
    deferred: bool = False
    public_defer: bool = False
    created: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "fleet_requests"
        indexes = [
            IndexModel([("created", pymongo.ASCENDING)], expireAfterSeconds=FLEET_REQUEST_TTL),
            IndexModel([("target_worker", pymongo.ASCENDING), ("status", pymongo.ASCENDING)]),
        ]


class GuildPreferences(Document):
    """What a guild chose for every bot of the network (unlike `GuildSettings`, not per bot)."""

    guild_id: Annotated[int, Indexed(unique=True)]
    # "en" or "th": answers in that language whatever each member's Discord language;
    # None: each member's own Discord language.
    language: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "guild_preferences"


class PlaylistTrack(BaseModel):
    """A saved track: Lavalink's encoded track and info (loading needs no search or decode call)."""

    encoded: str
    info: dict[str, Any]
    title: str
    uri: str | None = None


class UserPlaylist(Document):
    """A playlist of one Discord user: it follows them across every bot of the network."""

    user_id: int
    name: str
    name_key: str  # casefolded name: "Chill" and "chill" are one playlist
    tracks: list[PlaylistTrack] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "user_playlists"
        indexes = [
            IndexModel(
                [("user_id", pymongo.ASCENDING), ("name_key", pymongo.ASCENDING)],
                unique=True,
                name="user_name_unique",
            )
        ]


DOCUMENT_MODELS: list[type[Document]] = [
    MusicBot,
    ServerMusicBot,
    BotIdentifyLog,
    GuildSettings,
    PlayerSnapshot,
    WorkerRecord,
    BotLease,
    VoiceAssignment,
    FleetRequest,
    GuildPreferences,
    UserPlaylist,
]
