"""Single-bot administration without a seed file: list, enable, disable, remove.

(Adding a bot goes through the seed pipeline, so one bot and a whole file are validated alike.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from app.db.errors import UnknownBot
from app.db.models import MusicBot
from app.db.queries import delete_music_bot, update_music_bot
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
    shard_count: int | None = None  # the record's override; None: automatic


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
            shard_count=bot.shard_count,
        )
        for bot in bots
    ]


async def set_enabled(client_id: int, enabled: bool) -> tuple[MusicBot, bool]:
    """Returns the bot and whether anything changed."""
    bot, changed = await update_music_bot(client_id, enabled=enabled)
    if bot is None:
        raise UnknownBot(client_id)
    if changed:
        _log.info("Bot %r (%d) %s", bot.name, client_id, "enabled" if enabled else "disabled")
    return bot, changed


async def remove_bot(client_id: int) -> MusicBot:
    """Delete the bot, its guild records and saved players (its identify log stays)."""
    bot = await delete_music_bot(client_id)
    if bot is None:
        raise UnknownBot(client_id)
    _log.info("Removed bot %r (%d)", bot.name, client_id)
    return bot
