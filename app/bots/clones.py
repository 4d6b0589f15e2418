"""Clone rules and network statistics, without Discord: who may clone, uptime, fleet counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from app.bots.status import BotState
from app.db.models import utcnow

if TYPE_CHECKING:
    from app.bots.manager import BotManager


def may_clone(
    user_id: int, role_ids: Collection[int], *, owners: Collection[int], allowed: Collection[int]
) -> bool:
    """OWNER_IDS always; otherwise the user's id or one of their role ids in CLONE_ALLOWED_IDS."""
    return user_id in owners or user_id in allowed or any(role_id in allowed for role_id in role_ids)


def format_uptime(delta: timedelta) -> str:
    """`2d 3h 4m`, `3h 4m`, `4m 5s`: the two largest units."""
    seconds = max(0, int(delta.total_seconds()))
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s"


@dataclass(frozen=True, slots=True)
class NetworkStats:
    by_state: dict[BotState, int]
    servers: int  # distinct guilds with at least one ready bot of ours
    memberships: int  # bot-in-guild pairs (a guild with 3 of our bots counts 3)
    players: int
    tracks_played: int
    uptime: timedelta


def network_stats(manager: BotManager) -> NetworkStats:
    """What the running fleet is doing now (from memory: no database call)."""
    statuses = manager.statuses()
    servers: set[int] = set()
    players = tracks = 0
    for runner in manager.runners:
        client = runner.client
        if client is None:
            continue
        if runner.state is BotState.READY:
            servers.update(guild.id for guild in client.guilds)
        players += len(client.music.players())
        tracks += client.music.tracks_played
    return NetworkStats(
        by_state=dict(Counter(status.state for status in statuses)),
        servers=len(servers),
        memberships=sum(status.guilds for status in statuses),
        players=players,
        tracks_played=tracks,
        uptime=utcnow() - manager.started_at,
    )
