"""The admin API: change the fleet while it runs. Bearer ADMIN_API_TOKEN; disabled when unset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.api.auth import AdminDep
from app.api.deps import ManagerDep
from app.api.schemas import BotPublic, CommandSyncPublic
from app.bots.command_sync import SyncTarget, sync_commands
from app.bots.commands import command_payloads
from app.bots.manager import BotManager
from app.bots.registry import DuplicateBot, RegistrationError, register_bot
from app.bots.status import BotState, BotStatus
from app.db import queries
from app.db.models import MusicBot, utcnow

router = APIRouter(prefix="/bots", tags=["admin"], dependencies=[AdminDep])


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: SecretStr = Field(description="The bot token; stored encrypted, never returned")
    name: str | None = Field(
        default=None, min_length=1, max_length=80, description="Default: its Discord name"
    )


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=80)
    enabled: bool | None = None


class CommandDeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guild_id: int | None = Field(default=None, alias="guildId", description="Deploy to one guild (instant)")


async def _stored(client_id: int) -> MusicBot:
    bot = await queries.get_music_bot_by_client_id(client_id)
    if bot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no bot with client id {client_id}")
    return bot


def _public(manager: BotManager, bot: MusicBot) -> BotPublic:
    runner = manager.get_runner(bot.client_id)
    if runner is not None:
        return BotPublic.from_status(runner.status())
    return BotPublic.from_status(
        BotStatus(
            client_id=bot.client_id,
            name=bot.name,
            state=BotState.STOPPED,
            since=bot.updated_at,
            guilds=bot.guild_count,
            users=bot.user_count,
            latency_ms=None,
            last_error=None,
            identifies_24h=0,
        )
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BotPublic, response_model_by_alias=True)
async def create_bot(body: BotCreate, manager: ManagerDep) -> BotPublic:
    """Validate the token with Discord (`GET /users/@me`), store it encrypted and start the bot."""
    try:
        bot = await register_bot(body.token.get_secret_value(), cipher=manager.cipher, name=body.name)
    except DuplicateBot as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except RegistrationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    await manager.sync_bot(bot.client_id, bot)
    return _public(manager, bot)


@router.patch("/{client_id}", response_model=BotPublic, response_model_by_alias=True)
async def update_bot(client_id: int, body: BotUpdate, manager: ManagerDep) -> BotPublic:
    """Rename (restarts that bot) and/or enable/disable it."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "nothing to change: send name and/or enabled"
        )
    bot = await _stored(client_id)
    for field, value in changes.items():
        setattr(bot, field, value)
    bot.updated_at = utcnow()
    await bot.save()
    await manager.sync_bot(client_id, bot)
    return _public(manager, bot)


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_bot(client_id: int, manager: ManagerDep) -> Response:
    """Stop the bot (leaving its voice channels) and delete it."""
    bot = await _stored(client_id)
    await bot.delete()
    await manager.sync_bot(client_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{client_id}/restart", response_model=BotPublic, response_model_by_alias=True)
async def restart_bot(client_id: int, manager: ManagerDep) -> BotPublic:
    """Start the bot again on a fresh client (also retries a failed one)."""
    bot = await _stored(client_id)
    if not bot.enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "the bot is disabled: enable it first")
    await manager.start_bot(bot)
    return _public(manager, bot)


@router.post("/{client_id}/commands", response_model=CommandSyncPublic, response_model_by_alias=True)
async def deploy_commands(
    client_id: int, manager: ManagerDep, body: Annotated[CommandDeploy | None, Body()] = None
) -> CommandSyncPublic:
    """Bulk-overwrite the bot's slash commands (REST only), globally or in one guild."""
    bot = await _stored(client_id)
    guild_id = body.guild_id if body is not None else None
    target = SyncTarget(bot.name, bot.client_id, guild_id, bot.token_ciphertext)
    (result,) = await sync_commands([target], await command_payloads(), cipher=manager.cipher)
    if not result.ok:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, result.detail)
    return CommandSyncPublic(client_id=str(bot.client_id), scope=target.scope, commands=result.commands)
