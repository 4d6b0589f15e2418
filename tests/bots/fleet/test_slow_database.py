"""A slow database must not stop the music: a heartbeat that is slow but lands in time keeps the
bots running (the stop/restart loop seen with 500 bots starting at once on one worker)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.db.models import WorkerRecord
from app.settings import Settings
from tests.bots.fleet.slow_database import SlowProxy
from tests.bots.fleet.workers import until
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]
WAIT = 60.0


async def test_slow_but_timely_heartbeats_keep_every_bot_running(
    fake_discord: FakeDiscord,
    make_settings: Any,
    mongodb_url: str,
    mongo: Mongo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every request to the database takes 1.4 s, longer than a heartbeat interval (1.2 s with
    LEASE_TTL 6). Each heartbeat still lands well before the renew deadline (4 s) counted from
    when it was sent, so the worker keeps its bots: none is stopped, none identifies again.
    (Before: a heartbeat was abandoned after one interval, none ever succeeded, and the worker
    stopped every bot at the deadline, then restarted them all once the database was fast again.)"""
    proxy = SlowProxy(mongodb_url)
    await proxy.start()
    settings: Settings = make_settings(
        mongodb_url=proxy.url,
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        lease_ttl=6.0,
    )
    bots = [fake_discord.add_bot(name=f"Slow {n}") for n in range(3)]
    for bot in bots:
        await store_bot(mongo, settings, bot)
    workers = mongo[settings.mongodb_database][WorkerRecord.Settings.name]
    caplog.set_level(logging.INFO, logger="app.bots.fleet")
    try:
        async with running_app(settings) as running:
            for bot in bots:
                await running.wait_for(bot, BotState.READY)
            fleet = running.manager.fleet
            identifies = [bot.identify_count for bot in bots]
            expired: list[bool] = []

            async def watch() -> None:
                while True:
                    expired.append(fleet.heart.expired)
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch())
            document = await workers.find_one({"_id": fleet.me})
            assert document is not None
            start = document["heartbeat"]
            proxy.delay = 1.4

            async def beats_landed() -> bool:
                current = await workers.find_one({"_id": fleet.me})
                return current is not None and current["heartbeat"] >= start + 8

            # Eight heartbeats through the slow database: ~10 s, well past the renew deadline.
            await until(beats_landed, timeout=WAIT, what="heartbeats to land through the slow database")
            proxy.delay = 0.0
            watcher.cancel()
            assert not any(expired), "the worker passed its renew deadline"
            assert all(fake_discord.is_connected(bot) for bot in bots)
            assert [bot.identify_count for bot in bots] == identifies
            assert all(running.manager.get_runner(bot.client_id) is not None for bot in bots)
    finally:
        await proxy.close()
    assert not [r for r in caplog.records if "renew deadline" in r.getMessage()]
    assert all(bot.max_concurrent_sessions == 1 for bot in bots)
