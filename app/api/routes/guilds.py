from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from app.api import responses
from app.api.auth import AdminDep
from app.api.database import DatabaseDep
from app.api.deps import ManagerDep
from app.api.params import GuildIdPath
from app.api.schemas import ErrorPublic, GuildBotPublic, GuildBotsPublic, InvitePublic
from app.db import queries
from app.db.connection import interactive
from app.db.models import MusicBot

router = APIRouter(prefix="/guilds", tags=["guilds"])


@router.get(
    "/{guild_id}/bots",
    response_model=GuildBotsPublic,
    response_model_by_alias=True,
    dependencies=[DatabaseDep],
    responses=responses.DATABASE,
)
async def guild_bots(guild_id: GuildIdPath, manager: ManagerDep) -> GuildBotsPublic:
    """Every bot's assignment to the guild (pending, active, removed, failed) and what it plays."""
    entries: list[GuildBotPublic] = []
    with interactive():
        assignments = await queries.guild_assignments(guild_id)
        bots = {a.music_bot_id: await MusicBot.get(a.music_bot_id) for a in assignments}
    for assignment in assignments:
        bot = bots[assignment.music_bot_id]
        if bot is None:
            continue
        player = manager.router.player_of(bot.client_id, guild_id)
        entries.append(
            GuildBotPublic(
                client_id=str(bot.client_id),
                name=bot.name,
                status=assignment.status,
                activated_at=assignment.activated_at,
                removed_at=assignment.removed_at,
                reason=assignment.reason,
                voice_channel_id=str(player.channel.id) if player is not None and player.channel else None,
            )
        )
    return GuildBotsPublic(guild_id=str(guild_id), bots=entries)


@router.post(
    "/{guild_id}/invite",
    response_model=InvitePublic,
    response_model_by_alias=True,
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep, DatabaseDep],
    responses={
        **responses.ADMIN,
        **responses.DATABASE,
        409: {"model": ErrorPublic, "description": "Every enabled bot is already in the guild or full"},
    },
)
async def create_invite(guild_id: GuildIdPath, manager: ManagerDep) -> InvitePublic:
    """Pick the least-loaded enabled bot with room that is not in the guild, record it
    PENDING_INVITE, and return its invite URL. The bot's join later makes it ACTIVE."""
    with interactive():
        invite = await manager.router.invite_for(guild_id)
    if invite is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "every enabled bot is already in this guild or at its guild cap"
        )
    return InvitePublic(client_id=str(invite.client_id), name=invite.name, url=invite.url)
