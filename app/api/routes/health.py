from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DatabaseMonitorDep, ManagerDep
from app.api.schemas import HealthPublic, LavalinkPublic
from app.db.models import utcnow

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, response_model_by_alias=True)
async def health(manager: ManagerDep, database: DatabaseMonitorDep) -> HealthPublic:
    """The whole fleet, from any worker: `degraded` (still 200) when the database is
    unreachable, a bot failed, a bot has been starting/reconnecting longer than
    HEALTH_RECONNECT_THRESHOLD, an enabled bot has no live worker running it, or Lavalink is
    configured and no bot has a connected node."""
    fleet = manager.health()
    connected, total = fleet.lavalink
    degraded = (
        fleet.failed > 0
        or not database.reachable
        or fleet.stuck > 0
        or fleet.unowned > 0
        or (total > 0 and connected == 0)
    )
    return HealthPublic(
        status="degraded" if degraded else "ok",
        uptime=round((utcnow() - manager.started_at).total_seconds(), 3),
        active_bots=fleet.ready,
        total_bots=fleet.total,
        failed_bots=fleet.failed,
        unowned_bots=fleet.unowned,
        workers=fleet.workers,
        database="ok" if database.reachable else "unreachable",
        lavalink=LavalinkPublic(connected=connected, total=total),
    )
