"""The state of one bot as the manager sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.db.models import MusicBot


class BotState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"
    DISABLED = "disabled"  # stored with enabled=false: listed, never started


@dataclass(frozen=True, slots=True)
class BotStatus:
    """A read-only snapshot for `/bots` and `/health`."""

    client_id: int
    name: str
    state: BotState
    since: datetime
    guilds: int
    users: int
    latency_ms: float | None
    last_error: str | None
    identifies_24h: int
    shards: int = 1  # gateway connections (shards) the bot runs
    # The worker that runs it (None: no live worker does); filled in by the manager.
    worker: str | None = None
    # Starting or reconnecting longer than HEALTH_RECONNECT_THRESHOLD, as its owner measured.
    stuck: bool = False


def stored_status(bot: MusicBot, state: BotState) -> BotStatus:
    """The status of a bot that is not running here (disabled, stopped): what its record says."""
    return BotStatus(
        client_id=bot.client_id,
        name=bot.name,
        state=state,
        since=bot.updated_at,
        guilds=bot.guild_count,
        users=bot.user_count,
        latency_ms=None,
        last_error=None,
        identifies_24h=0,
        shards=bot.shard_count or 1,
    )
