from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import DatabaseMonitorDep, ManagerDep
from app.api.schemas import HealthPublic
from app.bots.status import BotState
from app.db.models import utcnow

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, response_model_by_alias=True)
async def health(manager: ManagerDep, database: DatabaseMonitorDep) -> HealthPublic:
    """Liveness and a summary. `degraded` (still 200) when the database is unreachable or a bot failed."""
    states = manager.state_counts()
    failed = states[BotState.FAILED]
    degraded = failed > 0 or not database.reachable
    return HealthPublic(
        status="degraded" if degraded else "ok",
        uptime=round((utcnow() - manager.started_at).total_seconds(), 3),
        active_bots=states[BotState.READY],
        total_bots=sum(states.values()),
        failed_bots=failed,
        database="ok" if database.reachable else "unreachable",
    )
