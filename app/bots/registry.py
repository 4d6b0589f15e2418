"""Registering one bot from a token: the admin API's `POST /bots` and the `/clone` modal."""

from __future__ import annotations

import logging

import discord
from pymongo.errors import DuplicateKeyError

from app.db import queries
from app.db.models import MusicBot, utcnow
from app.discord_rest import DiscordRestError, check_token
from app.tokens import (
    NAME_REFUSAL,
    InvalidTokenFormat,
    TokenCipher,
    client_id_from_token,
    contains_token,
    token_fingerprint,
)

_log = logging.getLogger(__name__)

NAME_MAX = 80


class RegistrationError(Exception):
    """The bot cannot be registered; the message is safe to show (it never contains the token)."""


class InvalidBotToken(RegistrationError):
    """Malformed, or rejected by Discord (the message carries Discord's reason)."""


class DuplicateBot(RegistrationError):
    """The token or the application is already registered."""


async def register_bot(
    token: str,
    *,
    cipher: TokenCipher,
    name: str | None = None,
    owner_id: int | None = None,
    check_online: bool = True,
    owner_may_replace: bool = False,
) -> MusicBot:
    """Validate, encrypt and store a new bot (enabled). Starting it is the caller's business.

    With `owner_may_replace`, an application already registered *by the same owner* gets the
    new token (and is enabled again) instead of a conflict: the clone owner's way back after
    resetting a token or stopping the clone.
    """
    token = token.strip()
    try:
        client_id = client_id_from_token(token)
    except InvalidTokenFormat as exc:
        raise InvalidBotToken(f"token: {exc}") from None
    if name is not None:
        name = name.strip()
        if not 1 <= len(name) <= NAME_MAX:
            raise RegistrationError(f"name: must be 1-{NAME_MAX} characters")
        if contains_token(name):  # names are stored in plaintext and shown to everyone
            raise RegistrationError(f"name: {NAME_REFUSAL}")
    fingerprint = token_fingerprint(token)
    same_app = await queries.get_music_bot_by_client_id(client_id)
    replacing = (
        same_app if owner_may_replace and same_app is not None and same_app.owner_id == owner_id else None
    )
    if replacing is not None and replacing.enabled and replacing.token_fingerprint == fingerprint:
        raise DuplicateBot(f"{replacing.name!r} already runs with this token")
    same_token = await MusicBot.find_one(MusicBot.token_fingerprint == fingerprint)
    if same_token is not None and (replacing is None or same_token.id != replacing.id):
        raise DuplicateBot(f"this token is already registered (bot {same_token.name!r})")
    if same_app is not None and replacing is None:
        raise DuplicateBot(f"application {client_id} is already registered as {same_app.name!r}")
    username = None
    if check_online:
        try:
            username = await check_token(token, expected_client_id=client_id)
        except DiscordRestError as exc:
            if isinstance(exc.__cause__, discord.LoginFailure):  # the operator's advice does not apply here
                raise InvalidBotToken(
                    "Discord rejected the token (401 Unauthorized): it was reset, revoked or mistyped"
                ) from None
            raise InvalidBotToken(str(exc)) from None
    if replacing is not None:
        replacing.token_ciphertext = cipher.encrypt(token)
        replacing.token_fingerprint = fingerprint
        replacing.enabled = True
        replacing.name = name or replacing.name
        replacing.updated_at = utcnow()
        await replacing.save()
        _log.info("Bot %r (%d) got a new token from its owner %s", replacing.name, client_id, owner_id)
        return replacing
    bot = MusicBot(
        name=name or username or f"Bot {client_id}",
        client_id=client_id,
        token_ciphertext=cipher.encrypt(token),
        token_fingerprint=fingerprint,
        owner_id=owner_id,
    )
    try:
        await bot.insert()
    except DuplicateKeyError:
        raise DuplicateBot("this bot was registered at the same moment by someone else") from None
    _log.info("Registered bot %r (%d), owner %s", bot.name, client_id, owner_id)
    return bot
