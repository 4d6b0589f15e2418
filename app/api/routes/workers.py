from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ManagerDep
from app.api.schemas import WorkerPublic, WorkersPublic

router = APIRouter(tags=["fleet"])


@router.get("/workers", response_model=WorkersPublic, response_model_by_alias=True)
async def list_workers(manager: ManagerDep) -> WorkersPublic:
    """Every registered worker of the fleet (oldest first), as the worker answering sees it:
    the bots each holds, and how long ago its heartbeat last changed on this worker's clock."""
    return WorkersPublic(
        workers=[
            WorkerPublic(
                id=worker.id,
                address=worker.address,
                state=worker.state,
                bots=worker.bots,
                heartbeat_age=worker.heartbeat_age,
                capacity=worker.capacity,
                me=worker.me,
            )
            for worker in manager.fleet.workers()
        ]
    )
