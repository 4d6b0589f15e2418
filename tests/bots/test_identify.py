"""The IDENTIFY budget is decided from memory: a hung database never holds a login back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.bots.status import BotState
from app.db.models import BotIdentifyLog
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot
from tests.own_database import own_database


async def test_a_hung_database_never_delays_an_identify(
    tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any
) -> None:
    """The database paused (SIGSTOP): a bot whose session is invalidated identifies again at
    once. It used to wait in `record_identify` for as long as pymongo took to give up (~29 s)."""
    async with own_database(tmp_path / "db", fake_discord, make_settings) as own:
        database, settings, observer = own.process, own.settings, own.observer
        log = own.db[BotIdentifyLog.Settings.name]
        bot = fake_discord.add_bot(name="Hung database")
        await store_bot(observer, settings, bot)
        late = fake_discord.add_bot(name="Restarted during the hang")
        await store_bot(observer, settings, late)
        async with running_app(settings) as running:
            await running.wait_for(bot, BotState.READY)
            await running.wait_for(late, BotState.READY)
            runner = running.manager.get_runner(bot.client_id)
            assert runner is not None
            database.pause()
            try:
                await fake_discord.disconnect(bot, code=4009)  # not resumable: a new IDENTIFY
                # Generous for the new code (it takes well under a second), shorter than the
                # old code's wait for the hung database.
                await fake_discord.wait_for_identify(bot, count=2, timeout=15)
                await running.wait_for(bot, BotState.READY, timeout=15)
                assert database.paused  # it never waited for the database
                assert runner.status().identifies_24h == 2  # counted in memory
                # A bot (re)started now cannot load its IDENTIFY log: it goes on from memory
                # after a short wait (2 s) rather than wait for the database.
                before = running.manager.get_runner(late.client_id)
                await running.manager.restart_here(late.client_id)
                started = running.manager.get_runner(late.client_id)
                assert started is not None and started is not before
                await started.wait_for_state(BotState.READY, timeout=15)
                assert database.paused
            finally:
                database.resume()
            # Persisted in the background once the database answers again.
            async with asyncio.timeout(30):
                while True:
                    doc = await log.find_one({"client_id": bot.client_id})
                    if doc is not None and len(doc["timestamps"]) == 2:
                        break
                    await asyncio.sleep(0.1)
