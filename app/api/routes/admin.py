"""The admin API: change the fleet while it runs. Bearer ADMIN_API_TOKEN; disabled when unset."""

from __future__ import annotations

from typing import Annotated

import pymongo
from fastapi import APIRouter, Body, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import (
    MISSING,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    field_validator,
    model_validator,
)

from app.api import responses
from app.api.auth import AdminDep
from app.api.database import DatabaseDep, unavailable
from app.api.deps import DatabaseMonitorDep, ManagerDep
from app.api.params import ClientIdPath, SnowflakeField
from app.api.schemas import BotPublic, CommandSyncPublic
from app.bots.command_sync import SyncTarget, sync_commands
from app.bots.commands import command_payloads
from app.bots.manager import BotManager
from app.bots.registry import NAME_MAX, DuplicateBot, RegistrationError, register_bot
from app.bots.status import BotState, stored_status
from app.db import queries
from app.db.connection import interactive
from app.db.models import MusicBot
from app.logs import public_reason
from app.tokens import NAME_REFUSAL, TOKEN_PATTERN, contains_token

router = APIRouter(
    prefix="/bots",
    tags=["admin"],
    dependencies=[AdminDep, DatabaseDep],
    responses={**responses.ADMIN, **responses.DATABASE},
)

# Seconds `POST /bots` may spend in the database *and* asking Discord about the token.
REGISTRATION_DEADLINE = 15.0


def _display_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise ValueError("must not be blank")
    if contains_token(name):
        raise ValueError(NAME_REFUSAL)
    return name


BotName = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_display_name)]


# Optional fields are MISSING when absent: the schema then says "omit it", not "send null", and
# what the schema accepts is exactly what the route accepts.


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: SecretStr = Field(
        description="The bot token; stored encrypted, never returned",
        json_schema_extra={"pattern": TOKEN_PATTERN.pattern},
    )
    name: BotName | MISSING = Field(default=MISSING, description="Default: its Discord name")

    @field_validator("token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        # The declared pattern, checked here: pydantic cannot apply a pattern to a SecretStr.
        if isinstance(value, str) and TOKEN_PATTERN.match(value) is None:
            raise ValueError("not a Discord bot token (three dot-separated base64url parts)")
        return value


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    name: BotName | MISSING = MISSING
    enabled: StrictBool | MISSING = Field(default=MISSING, description="true or false, nothing else")

    @model_validator(mode="after")
    def _something(self) -> BotUpdate:
        if self.name is MISSING and self.enabled is MISSING:
            raise ValueError("nothing to change: send name and/or enabled")
        return self


class CommandDeploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guild_id: SnowflakeField | MISSING = Field(
        default=MISSING, alias="guildId", description="Deploy to one guild (instant); default: global"
    )


def _invalid(field: str, message: str) -> RequestValidationError:
    """A 422 shaped like every other validation error (the schema's HTTPValidationError)."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


async def _stored(client_id: int) -> MusicBot:
    with interactive():
        bot = await queries.get_music_bot_by_client_id(client_id)
    if bot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no bot with client id {client_id}")
    return bot


def _public(manager: BotManager, bot: MusicBot) -> BotPublic:
    """The bot as the fleet sees it, wherever it runs (`disabled`, or `stopped`: nobody runs it)."""
    status = manager.status_of(bot.client_id)
    if status is not None:
        return BotPublic.from_status(status)
    return BotPublic.from_status(stored_status(bot, BotState.STOPPED))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BotPublic,
    response_model_by_alias=True,
    responses={
        **responses.BODY,
        409: {
            "model": responses.ErrorPublic,
            "description": "The token or application is already registered",
        },
    },
)
async def create_bot(body: BotCreate, manager: ManagerDep, database: DatabaseMonitorDep) -> BotPublic:
    """Validate the token with Discord (`GET /users/@me`), store it encrypted and start the bot.

    422 when the token is malformed or Discord rejects it (Discord's reason, bounded)."""
    # A ping first (bounded at 2 s): the registration's deadline also covers asking Discord,
    # so it is too long to notice an outage quickly.
    if not await database.check():
        raise unavailable()
    try:
        with pymongo.timeout(REGISTRATION_DEADLINE):
            bot = await register_bot(
                body.token.get_secret_value(),
                cipher=manager.cipher,
                name=None if body.name is MISSING else body.name,
            )
    except DuplicateBot as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, public_reason(str(exc))) from None
    except RegistrationError as exc:  # "name: ..." or about the token (its shape, Discord's answer)
        field = "name" if str(exc).startswith("name: ") else "token"
        raise _invalid(field, public_reason(str(exc).removeprefix(f"{field}: "))) from None
    await manager.sync_bot(bot.client_id, bot)
    return _public(manager, bot)


@router.patch(
    "/{client_id}", response_model=BotPublic, response_model_by_alias=True, responses=responses.BODY
)
async def update_bot(client_id: ClientIdPath, body: BotUpdate, manager: ManagerDep) -> BotPublic:
    """Rename (restarts that bot) and/or enable/disable it."""
    with interactive():
        bot, _ = await queries.update_music_bot(
            client_id,
            name=None if body.name is MISSING else body.name,
            enabled=None if body.enabled is MISSING else body.enabled,
        )
    if bot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no bot with client id {client_id}")
    await manager.sync_bot(client_id, bot)
    return _public(manager, bot)


@router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_bot(client_id: ClientIdPath, manager: ManagerDep) -> Response:
    """Stop the bot (leaving its voice channels), then delete it with its guild records."""
    await _stored(client_id)
    # Stopped first: a stopping bot still saves its players, which the delete then removes.
    await manager.sync_bot(client_id, None)
    with interactive():
        deleted = await queries.delete_music_bot(client_id)
    if deleted is None:  # deleted by someone else meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no bot with client id {client_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{client_id}/restart",
    response_model=BotPublic,
    response_model_by_alias=True,
    responses={409: {"model": responses.ErrorPublic, "description": "The bot is disabled"}},
)
async def restart_bot(client_id: ClientIdPath, manager: ManagerDep) -> BotPublic:
    """Start the bot again on a fresh client (also retries a failed one), on whichever worker
    runs it: here at once, or by its owner, which follows its lease."""
    bot = await _stored(client_id)
    if not bot.enabled:
        raise HTTPException(status.HTTP_409_CONFLICT, "the bot is disabled: enable it first")
    await manager.restart_bot(client_id)
    return _public(manager, bot)


@router.post(
    "/{client_id}/commands",
    response_model=CommandSyncPublic,
    response_model_by_alias=True,
    responses={
        **responses.BODY,
        409: {
            "model": responses.ErrorPublic,
            "description": "Discord refused: the token was reset, or the bot is not in that guild",
        },
        502: {"model": responses.ErrorPublic, "description": "Discord could not be reached or failed"},
    },
)
async def deploy_commands(
    client_id: ClientIdPath, manager: ManagerDep, body: Annotated[CommandDeploy | None, Body()] = None
) -> CommandSyncPublic:
    """Bulk-overwrite the bot's slash commands (REST only), globally or in one guild."""
    bot = await _stored(client_id)
    guild_id = None if body is None or body.guild_id is MISSING else body.guild_id
    target = SyncTarget(bot.name, bot.client_id, guild_id, bot.token_ciphertext)
    (result,) = await sync_commands([target], await command_payloads(), cipher=manager.cipher)
    if not result.ok:
        code = status.HTTP_409_CONFLICT if result.refused else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, public_reason(result.detail or "failed"))
    return CommandSyncPublic(client_id=str(bot.client_id), scope=target.scope, commands=result.commands)
