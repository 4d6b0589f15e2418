"""The state of one bot as the manager sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
