"""What the admin API tests share: the admin token, settings that turn the API on, and the app
running with stored bots ready."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.fleet import RunningApp, running_app, store_bot

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def settings_with_admin_api(make_settings: Callable[..., Settings], fake_discord: FakeDiscord) -> Settings:
    """The fleet on the fake Discord (no IDENTIFY spacing) with the admin API on, behind ADMIN."""
    return make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        admin_api_token=ADMIN_TOKEN,
    )


@contextlib.asynccontextmanager
async def running_with_ready(
    settings: Settings, mongo: AsyncMongoClient[dict[str, Any]], *bots: FakeBot
) -> AsyncIterator[RunningApp]:
    """The app running with `bots` stored (enabled) and each of them ready."""
    for bot in bots:
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        for bot in bots:
            await running.wait_for(bot, BotState.READY)
        yield running
