"""What every `chorus` command needs: the database (external or embedded) and the token cipher."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from pymongo import AsyncMongoClient

from app.db.connection import connect_database
from app.embedded import EmbeddedDatabase, embedded_database, load_or_create_key
from app.settings import Settings
from app.tokens import TokenCipher

_log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """The settings cannot work together; the message says what to change."""


@dataclass(slots=True)
class Store:
    client: AsyncMongoClient[dict[str, Any]]
    database: str
    cipher: TokenCipher
    embedded: EmbeddedDatabase | None


def resolve_cipher(settings: Settings) -> TokenCipher:
    keys = settings.encryption_keys
    if keys:
        return TokenCipher(keys)
    if settings.uses_embedded_database:
        return TokenCipher([load_or_create_key(settings.data_dir)])
    raise ConfigurationError(
        "TOKEN_ENCRYPTION_KEYS is required when MONGODB_URL is set: bot tokens are stored encrypted. "
        "Generate a key with `chorus gen-key` and set TOKEN_ENCRYPTION_KEYS=<key>."
    )


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (before any client starts)."""
    discord.http.Route.BASE = settings.discord_api_base
    gateway = settings.discord_gateway_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
        gateway if gateway.endswith("/") else gateway + "/"
    )


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """Connect to the configured database, starting the embedded one if none is configured."""
    cipher = resolve_cipher(settings)
    async with contextlib.AsyncExitStack() as stack:
        embedded: EmbeddedDatabase | None = None
        if settings.mongodb_url is not None and settings.mongodb_url.get_secret_value().strip():
            url = settings.mongodb_url.get_secret_value()
        else:
            embedded = await stack.enter_async_context(embedded_database(settings.data_dir))
            url = embedded.url
        client = await connect_database(
            url, settings.mongodb_database, timeout=settings.database_startup_timeout
        )
        stack.push_async_callback(client.close)
        yield Store(client=client, database=settings.mongodb_database, cipher=cipher, embedded=embedded)
