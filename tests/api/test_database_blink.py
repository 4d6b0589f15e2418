"""The database going away must degrade /health and delay records, never stop a bot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from beanie import init_beanie

from app.bots.status import BotState
from app.db.connection import make_client
from app.db.models import DOCUMENT_MODELS, MusicBot, ServerMusicBot
from app.settings import Settings
from tests.database_process import DatabaseProcess
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot


async def test_database_blink(tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any) -> None:
    database = DatabaseProcess(tmp_path / "db")
    database.start()
    url = database.url
    settings: Settings = make_settings(
        mongodb_url=url,
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
    )
    observer = make_client(url)
    await init_beanie(database=observer[settings.mongodb_database], document_models=DOCUMENT_MODELS)
    try:
        bot = fake_discord.add_bot(name="Steady")
        await store_bot(observer, settings, bot)
        async with running_app(settings) as running:
            await running.wait_for(bot, BotState.READY)
            runner = running.manager.get_runner(bot.client_id)
            assert runner is not None
            ready_since = runner.since

            database.kill()
            monitor = running.app.state.database_monitor
            assert not await monitor.check()
            health = (await running.http.get("/health")).json()
            assert (health["status"], health["database"], health["activeBots"]) == (
                "degraded",
                "unreachable",
                1,
            )

            # A join while the database is down: the bot serves it, the record waits.
            guild = fake_discord.add_guild()
            await fake_discord.add_bot_to_guild(bot, guild.id)
            client = runner.client
            assert client is not None
            async with asyncio.timeout(30):
                while client.get_guild(guild.id) is None:
                    await asyncio.sleep(0.02)

            database.start()
            collection = observer[settings.mongodb_database][ServerMusicBot.Settings.name]
            bots = observer[settings.mongodb_database][MusicBot.Settings.name]
            async with asyncio.timeout(30):
                # The restarted server may accept connections before its data is back.
                while (stored := await bots.find_one({"client_id": bot.client_id})) is None:
                    await asyncio.sleep(0.1)
            async with asyncio.timeout(30):
                while not await collection.find_one({"server_id": guild.id, "music_bot_id": stored["_id"]}):
                    await asyncio.sleep(0.1)
            assert await monitor.check()
            assert (await running.http.get("/health")).json()["status"] == "ok"
            # The bot never left READY.
            assert runner.state is BotState.READY and runner.since == ready_since
    finally:
        await observer.close()
        database.kill()
