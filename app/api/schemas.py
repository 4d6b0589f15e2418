"""Public response schemas. Built field by field from status snapshots: none can carry a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.bots.status import BotState, BotStatus
from app.db.models import ServerStatus
from app.logs import public_reason


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class LavalinkPublic(_Public):
    connected: int = Field(description="Lavalink nodes connected, over every running bot (each has its own)")
    total: int = Field(description="Lavalink nodes configured, over every running bot")


class HealthPublic(_Public):
    status: Literal["ok", "degraded"]
    uptime: float = Field(description="Seconds since this worker started")
    active_bots: int = Field(description="Bots of the whole fleet connected and ready")
    total_bots: int = Field(description="Enabled bots of the whole fleet, in any state")
    failed_bots: int
    unowned_bots: int = Field(description="Enabled bots no live worker runs (taken over within LEASE_TTL)")
    workers: int = Field(description="Live workers of the fleet, this one included")
    database: Literal["ok", "unreachable"]
    lavalink: LavalinkPublic


class BotPublic(_Public):
    name: str
    client_id: str = Field(description="Application id, as a string (snowflakes exceed JS numbers)")
    guilds: int
    users: int
    status: BotState
    latency_ms: float | None
    last_error: str | None
    shards: int = Field(description="Gateway connections (shards) the bot runs; 1 unless it shards")
    worker: str | None = Field(description="The worker running it (`host:pid:random`); null while none does")

    @classmethod
    def from_status(cls, status: BotStatus) -> BotPublic:
        return cls(
            name=status.name,
            client_id=str(status.client_id),
            guilds=status.guilds,
            users=status.users,
            status=status.state,
            latency_ms=status.latency_ms,
            last_error=public_reason(status.last_error) if status.last_error else None,
            shards=status.shards,
            worker=status.worker,
        )


class BotsPublic(_Public):
    bots: list[BotPublic]
    next: str | None = Field(
        default=None,
        description="Paged requests only (`limit`, `after`): the `after` of the next page, null on the last",
    )


class WorkerPublic(_Public):
    id: str = Field(description="`host:pid:random`")
    address: str = Field(description="Its HTTP address (WORKER_ADDRESS)")
    state: Literal["active", "draining", "dead"] = Field(
        description="dead: its heartbeat has stood still for LEASE_TTL (its bots are being taken over)"
    )
    bots: int = Field(description="Bots whose lease it holds")
    heartbeat_age: float | None = Field(
        description="Seconds since the worker answering saw its heartbeat change (its own clock)"
    )
    capacity: int | None = Field(description="WORKER_CAPACITY; null: no cap")
    me: bool = Field(description="The worker that answered this request")


class WorkersPublic(_Public):
    workers: list[WorkerPublic]


class GuildBotPublic(_Public):
    client_id: str
    name: str
    status: ServerStatus
    activated_at: datetime | None
    removed_at: datetime | None
    reason: str | None
    voice_channel_id: str | None = Field(description="The voice channel it plays in now, if any")


class GuildBotsPublic(_Public):
    guild_id: str
    bots: list[GuildBotPublic]


class InvitePublic(_Public):
    client_id: str
    name: str
    url: str


class CommandSyncPublic(_Public):
    client_id: str
    scope: str = Field(description="global (can take up to an hour to appear) or guild <id> (instant)")
    commands: int


class ErrorPublic(BaseModel):
    """Every error but a validation error (422): what went wrong, never the submitted value."""

    detail: str
