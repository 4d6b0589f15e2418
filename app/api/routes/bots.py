from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ManagerDep
from app.api.schemas import BotPublic, BotsPublic

router = APIRouter(tags=["bots"])


@router.get("/bots", response_model=BotsPublic, response_model_by_alias=True)
async def list_bots(manager: ManagerDep) -> BotsPublic:
    """Every bot the manager runs, with its state. Never a token, ciphertext or fingerprint."""
    return BotsPublic(bots=[BotPublic.from_status(status) for status in manager.statuses()])
