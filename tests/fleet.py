"""Helpers for end-to-end tests: store fake bots in the database and run the real app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.api.main import create_app
from app.bots.manager import BotManager
from app.bots.status import BotState
from app.db.models import MusicBot
from app.settings import Settings
from app.tokens import TokenCipher, token_fingerprint
from tests.fakes.discord import FakeBot


async def store_bot(
    mongo: AsyncMongoClient[dict[str, Any]],
    settings: Settings,
    bot: FakeBot,
    *,
    enabled: bool = True,
    ciphertext: str | None = None,
    **fields: Any,
) -> None:
    """Insert the bot as the seed command would: encrypted token, fingerprint, no plaintext.
    `fields` sets more of the record (e.g. `shard_count`, `guild_count`)."""
    cipher = TokenCipher(settings.encryption_keys)
    document = MusicBot(
        name=bot.name,
        client_id=bot.client_id,
        token_ciphertext=ciphertext if ciphertext is not None else cipher.encrypt(bot.token),
        token_fingerprint=token_fingerprint(bot.token),
        enabled=enabled,
        **fields,
    )
    await mongo[settings.mongodb_database][MusicBot.Settings.name].insert_one(
        document.model_dump(exclude={"id", "revision_id"})
    )


@dataclass
class RunningApp:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def manager(self) -> BotManager:
        return self.app.state.manager

    async def wait_for(self, bot: FakeBot, *states: BotState, timeout: float = 30.0) -> BotState:
        runner = self.manager.get_runner(bot.client_id)
        assert runner is not None, f"the manager does not run {bot.name}"
        return await runner.wait_for_state(*states, timeout=timeout)


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[RunningApp]:
    """The real lifespan (database, manager, bots) with an in-process HTTP client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://chorus.test") as http:
            yield RunningApp(app=app, http=http)
