"""Single-bot administration without a seed file: list, enable, disable, remove.

(Adding a bot goes through the seed pipeline, so one bot and a whole file are validated alike.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from app.db.errors import UnknownBot
from app.db.models import MusicBot, ServerMusicBot, utcnow
from app.db.queries import forget_player_snapshots, get_music_bot_by_client_id
from app.tokens import TokenCipher, TokenDecryptionError

__all__ = ("BotSummary", "TokenState", "list_bots", "remove_bot", "set_enabled")

_log = logging.getLogger(__name__)


class TokenState(StrEnum):
    PRIMARY = "primary"  # encrypted with the first key of TOKEN_ENCRYPTION_KEYS
    OLD_KEY = "old-key"  # readable, but encrypted with an older key: run `chorus rotate-key`
    UNREADABLE = "unreadable"  # no configured key decrypts it


def token_state(cipher: TokenCipher, ciphertext: str) -> TokenState:
    if cipher.is_primary(ciphertext):
        return TokenState.PRIMARY
    try:
        cipher.decrypt(ciphertext)
    except TokenDecryptionError:
        return TokenState.UNREADABLE
    return TokenState.OLD_KEY


@dataclass(frozen=True, slots=True)
class BotSummary:
    name: str
    client_id: int
    enabled: bool
    guilds: int
    users: int
    token: TokenState


async def list_bots(cipher: TokenCipher) -> list[BotSummary]:
    bots = await MusicBot.find_all().sort("+created_at").to_list()
    return [
        BotSummary(
            name=bot.name,
            client_id=bot.client_id,
            enabled=bot.enabled,
            guilds=bot.guild_count,
            users=bot.user_count,
            token=token_state(cipher, bot.token_ciphertext),
        )
        for bot in bots
    ]


async def _get(client_id: int) -> MusicBot:
    bot = await get_music_bot_by_client_id(client_id)
    if bot is None:
        raise UnknownBot(client_id)
    return bot


async def set_enabled(client_id: int, enabled: bool) -> tuple[MusicBot, bool]:
    """Returns the bot and whether anything changed."""
    bot = await _get(client_id)
    if bot.enabled == enabled:
        return bot, False
    await MusicBot.get_pymongo_collection().update_one(
        {"client_id": client_id}, {"$set": {"enabled": enabled, "updated_at": utcnow()}}
    )
    bot.enabled = enabled
    if not enabled:
        await forget_player_snapshots(client_id)  # also when no service runs to see the change
    _log.info("Bot %r (%d) %s", bot.name, client_id, "enabled" if enabled else "disabled")
    return bot, True


async def remove_bot(client_id: int) -> MusicBot:
    """Delete the bot and its guild records (its identify log stays: Discord's budget still applies)."""
    bot = await _get(client_id)
    assert bot.id is not None, "a stored document has an id"
    await ServerMusicBot.get_pymongo_collection().delete_many({"music_bot_id": bot.id})
    await MusicBot.get_pymongo_collection().delete_one({"_id": bot.id})
    await forget_player_snapshots(client_id)
    _log.info("Removed bot %r (%d)", bot.name, client_id)
    return bot
