from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DatabaseMonitorDep, ManagerDep
from app.api.schemas import HealthPublic, LavalinkPublic
from app.bots.status import BotState
from app.db.models import utcnow

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, response_model_by_alias=True)
async def health(manager: ManagerDep, database: DatabaseMonitorDep) -> HealthPublic:
    """Liveness and a summary; `degraded` (still 200) when the database is unreachable, a bot
    failed, a bot has been starting/reconnecting longer than HEALTH_RECONNECT_THRESHOLD, or
    Lavalink is configured and no bot has a connected node."""
    states = manager.state_counts()
    failed = states[BotState.FAILED]
    stuck = manager.bots_down_longer_than(manager.settings.health_reconnect_threshold)
    connected, total = manager.lavalink_nodes()
    degraded = failed > 0 or not database.reachable or stuck > 0 or (total > 0 and connected == 0)
    return HealthPublic(
        status="degraded" if degraded else "ok",
        uptime=round((utcnow() - manager.started_at).total_seconds(), 3),
        active_bots=states[BotState.READY],
        total_bots=sum(states.values()),
        failed_bots=failed,
        database="ok" if database.reachable else "unreachable",
        lavalink=LavalinkPublic(connected=connected, total=total),
    )
