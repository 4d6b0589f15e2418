"""What every `chorus` command needs: the database (external or embedded) and the token cipher."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
import discord.gateway
import discord.http
import discord.voice_client
import yarl
from pymongo import AsyncMongoClient

from app import wait_for
from app.db.connection import close_client, connect_database, make_client
from app.embedded import EmbeddedDatabase, embedded_database
from app.key_file import load_or_create_keys
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
    # A second, small client for the fleet's coordination (heartbeat, reads of `workers`, the
    # writes of a hand-over): a thousand bots starting at once can fill the main client's pool
    # for seconds, and a heartbeat that waits in that queue past the renew deadline stops every
    # bot (docs/SCALING.md).
    coordination_client: AsyncMongoClient[dict[str, Any]] | None = None


def resolve_cipher(settings: Settings) -> TokenCipher:
    keys = settings.encryption_keys
    if keys:
        return TokenCipher(keys)
    if settings.uses_embedded_database:
        return TokenCipher(load_or_create_keys(settings.data_dir))
    raise ConfigurationError(
        "TOKEN_ENCRYPTION_KEYS is required when MONGODB_URL is set: bot tokens are stored encrypted. "
        "Generate a key with `chorus gen-key` and set TOKEN_ENCRYPTION_KEYS=<key>."
    )


def quiet_voice_warnings() -> None:
    """Audio runs on Lavalink, never through discord.py: its one-time warnings that PyNaCl and
    davey (its own voice packages) are missing would only alarm operators. Call before the
    first client is created."""
    discord.voice_client.VoiceClient.warn_nacl = False
    discord.voice_client.VoiceClient.warn_dave = False


def freeze_startup_objects() -> int:
    """Keep what start-up built out of the cyclic garbage collector's full passes; returns how many
    objects that is.

    Every module, class and function (about 120,000 objects once discord.py, wavelink, Beanie,
    FastAPI and ours are imported) lives as long as the process, yet each full collection walks
    them all: about 100 ms with the event loop stopped, which a burst of /play waited out
    (docs/PERFORMANCE.md, "Commands"). Collected once first, so no garbage is kept; anything made
    afterwards is collected as usual."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST base and gateway (before any client starts).

    The gateway URL is used exactly as configured: a proxy may serve it on a path of its own
    (`ws://proxy/gateway`), and discord.py only adds its query string to it.
    """
    discord.http.Route.BASE = settings.discord_api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    quiet_voice_warnings()


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """Connect to the configured database, starting the embedded one if none is configured."""
    wait_for.install()  # before the driver's first wait: a cancelled task must stop (app.wait_for)
    cipher = resolve_cipher(settings)
    async with contextlib.AsyncExitStack() as stack:
        embedded: EmbeddedDatabase | None = None
        if settings.mongodb_url is not None and settings.mongodb_url.get_secret_value().strip():
            url = settings.mongodb_url.get_secret_value()
        else:
            embedded = await stack.enter_async_context(embedded_database(settings.data_dir))
            url = embedded.url
        if settings.database_overrides_url:
            _log.warning("Using %s", settings.database_choice)
        else:
            _log.info("Using %s", settings.database_choice)
        client = await connect_database(
            url, settings.mongodb_database, timeout=settings.database_startup_timeout
        )
        stack.push_async_callback(close_client, client)
        coordination = make_client(url, maxPoolSize=4, appname="chorus-fleet")
        stack.push_async_callback(close_client, coordination)
        yield Store(client=client, database=settings.mongodb_database, cipher=cipher, embedded=embedded,
                    coordination_client=coordination)  # fmt: skip
