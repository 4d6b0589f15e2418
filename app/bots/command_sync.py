"""deploy-commands / clear-commands: bulk-overwrite each bot's application commands over REST.

No gateway session is opened and nothing of the music side starts: each bot logs in with
`GET /users/@me` only, then one `PUT` replaces its global (or one guild's) command set. Bots are
handled independently: one failing bot is reported and never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from app.db.errors import UnknownBot
from app.db.models import MusicBot
from app.db.queries import get_music_bot_by_client_id
from app.discord_rest import DiscordRestError, logged_in
from app.tokens import TokenCipher, TokenDecryptionError

__all__ = ("SYNC_CONCURRENCY", "SyncResult", "SyncTarget", "select_targets", "sync_commands")

_log = logging.getLogger(__name__)

# Failures worth retrying as they are: Discord unreachable, failing or asking us to wait.
_TRANSIENT = (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError, discord.RateLimited)

# Rate limits are per bot token, so a few bots at a time are safe and keep 100 bots quick.
SYNC_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class SyncTarget:
    name: str
    client_id: int
    guild_id: int | None
    token_ciphertext: str

    @property
    def scope(self) -> str:
        return "global" if self.guild_id is None else f"guild {self.guild_id}"

    def endpoint(self) -> str:
        if self.guild_id is None:
            return f"/applications/{self.client_id}/commands"
        return f"/applications/{self.client_id}/guilds/{self.guild_id}/commands"


@dataclass(frozen=True, slots=True)
class SyncResult:
    target: SyncTarget
    ok: bool
    detail: str
    commands: int = 0
    # Discord (or the stored token) refused: the same call will fail again until something
    # changes (a reset token, a guild the bot is not in), unlike an outage.
    refused: bool = False


async def select_targets(
    client_id: int | None, guild_id: int | None, *, include_disabled: bool = False
) -> list[SyncTarget]:
    """All enabled bots (or all bots), or one bot (enabled or not), optionally in one guild."""
    if client_id is not None:
        bot = await get_music_bot_by_client_id(client_id)
        if bot is None:
            raise UnknownBot(client_id)
        bots = [bot]
    else:
        query = {} if include_disabled else {"enabled": True}
        bots = await MusicBot.find(query).sort("+created_at").to_list()
    return [SyncTarget(bot.name, bot.client_id, guild_id, bot.token_ciphertext) for bot in bots]


async def _sync_one(target: SyncTarget, payload: Sequence[dict[str, Any]], cipher: TokenCipher) -> SyncResult:
    try:
        token = cipher.decrypt(target.token_ciphertext)
    except TokenDecryptionError as exc:
        return SyncResult(target, ok=False, detail=str(exc), refused=True)
    try:
        async with logged_in(token, expected_client_id=target.client_id) as rest:
            count = await rest.bulk_overwrite_commands(payload, guild_id=target.guild_id)
    except DiscordRestError as exc:
        _log.warning("Bot %r (%d): %s", target.name, target.client_id, exc)
        transient = isinstance(exc.__cause__, _TRANSIENT)
        return SyncResult(target, ok=False, detail=str(exc), refused=not transient)
    _log.info("Bot %r (%d): %d command(s) in %s", target.name, target.client_id, count, target.scope)
    return SyncResult(target, ok=True, detail=f"{count} command(s)", commands=count)


async def sync_commands(
    targets: Sequence[SyncTarget],
    payload: Sequence[dict[str, Any]],
    *,
    cipher: TokenCipher,
    on_result: Callable[[SyncResult], None] | None = None,
    concurrency: int = SYNC_CONCURRENCY,
) -> list[SyncResult]:
    """Overwrite every target's commands with `payload` (`[]` clears them). Results in target order."""
    gate = asyncio.Semaphore(concurrency)

    async def run(target: SyncTarget) -> SyncResult:
        async with gate:
            try:
                result = await _sync_one(target, payload, cipher)
            except Exception as exc:  # one bot's surprise must not cost the others their result
                _log.exception("Bot %r (%d): command sync failed", target.name, target.client_id)
                result = SyncResult(target, ok=False, detail=f"unexpected error: {type(exc).__name__}: {exc}")
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(run(target) for target in targets)))
