"""Discord's REST API for one bot at a time, with no gateway session.

It uses discord.py's own `HTTPClient`: it speaks to `discord.http.Route.BASE` (set from
`DISCORD_API_BASE` by `apply_discord_endpoints`), keeps Discord's per-route buckets and, on a
429, sleeps the `retry_after` Discord asks for and retries. Failures become `DiscordRestError`
with a message an operator can act on; no message ever contains the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import discord
import discord.http

__all__ = ("MAX_RATE_LIMIT_WAIT", "BotRest", "DiscordRestError", "check_token", "logged_in")

_log = logging.getLogger(__name__)

# A 429 asking for a longer wait than this fails the bot instead of stalling the whole run
# (Discord answers hours for the daily command-creation limit). discord.py's minimum is 30 s.
MAX_RATE_LIMIT_WAIT = 60.0


class DiscordRestError(Exception):
    """A REST call failed; the message says what it means for the operator."""


def describe_error(exc: BaseException, *, guild_id: int | None = None) -> str:
    """A readable reason for a failed call (never includes the token)."""
    if isinstance(exc, discord.LoginFailure):
        return (
            "Discord rejected the token (401 Unauthorized): it was reset or revoked in the Developer "
            "Portal, or mistyped. Store the new token with `chorus seed` or `chorus bots add`"
        )
    if isinstance(exc, discord.RateLimited):
        return (
            f"rate limited by Discord for {exc.retry_after:.0f}s (more than the {MAX_RATE_LIMIT_WAIT:.0f}s "
            "this command waits; Discord limits command creations per day): try again later"
        )
    if isinstance(exc, discord.Forbidden):
        if guild_id is not None:
            return (
                f"403 Forbidden in guild {guild_id} ({exc.text or 'Missing Access'}): the bot is not in that "
                "guild, or was invited without the applications.commands scope (invite it again with its "
                "invite URL)"
            )
        return f"403 Forbidden ({exc.text or 'Missing Access'})"
    if isinstance(exc, discord.NotFound):
        return f"404 Not Found ({exc.text or 'unknown application or guild'})"
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status} from Discord: {exc.text or exc}"
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return f"cannot reach Discord at {discord.http.Route.BASE}: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


_REST_ERRORS = (
    discord.LoginFailure,
    discord.RateLimited,
    discord.HTTPException,
    aiohttp.ClientError,
    OSError,
    TimeoutError,
)


class BotRest:
    """REST calls as one logged-in bot (see `logged_in`)."""

    def __init__(self, http: discord.http.HTTPClient, client_id: int, username: str) -> None:
        self._http = http
        self.client_id = client_id
        self.username = username

    async def recommended_shards(self) -> int:
        """How many gateway shards Discord recommends for the bot (`GET /gateway/bot`)."""
        try:
            shards, _url, _limits = await self._http.get_bot_gateway()
        except (*_REST_ERRORS, discord.GatewayNotFound) as exc:
            raise DiscordRestError(describe_error(exc)) from exc
        return shards

    async def bulk_overwrite_commands(
        self, payload: Sequence[dict[str, Any]], *, guild_id: int | None = None
    ) -> int:
        """Replace the bot's global (or one guild's) commands with `payload`. Returns how many
        commands Discord now has there."""
        try:
            if guild_id is None:
                stored = await self._http.bulk_upsert_global_commands(self.client_id, list(payload))
            else:
                stored = await self._http.bulk_upsert_guild_commands(self.client_id, guild_id, list(payload))
        except _REST_ERRORS as exc:
            raise DiscordRestError(describe_error(exc, guild_id=guild_id)) from exc
        return len(stored)


@contextlib.asynccontextmanager
async def logged_in(token: str, *, expected_client_id: int) -> AsyncIterator[BotRest]:
    """Validate the token with `GET /users/@me` (which spends no IDENTIFY) and yield REST access."""
    http = discord.http.HTTPClient(asyncio.get_running_loop(), max_ratelimit_timeout=MAX_RATE_LIMIT_WAIT)
    try:
        try:
            user = await http.static_login(token)
        except _REST_ERRORS as exc:
            raise DiscordRestError(describe_error(exc)) from exc
        if int(user["id"]) != expected_client_id:
            raise DiscordRestError(
                f"the token logs in as user {user['id']}, not application {expected_client_id}"
            )
        _log.debug("Logged in over REST as %s (%d)", user.get("username"), expected_client_id)
        yield BotRest(http, expected_client_id, str(user.get("username", "")))
    finally:
        await http.close()


async def check_token(token: str, *, expected_client_id: int) -> str:
    """Check the token against Discord; returns the bot's username. Raises `DiscordRestError`."""
    async with logged_in(token, expected_client_id=expected_client_id) as rest:
        return rest.username
