"""/health tells the truth: bots stuck starting, Lavalink with no connected node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.lavalink import FakeLavalink
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


async def health_until(running: RunningApp, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            health = (await running.http.get("/health")).json()
            if predicate(health):
                return health
            await asyncio.sleep(0.05)


async def test_a_bot_that_never_gets_ready_degrades_health(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """Its IDENTIFY is always closed (4000, retryable): it stays `starting`, never `failed`, and
    /health used to say `ok` for as long as that lasted."""
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        health_reconnect_threshold=0.5,
    )
    steady, stuck = fake_discord.add_bot(name="Steady"), fake_discord.add_bot(name="Stuck")
    stuck.identify_close_code = 4000
    for bot in (steady, stuck):
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(steady, BotState.READY)
        health = await health_until(running, lambda h: h["status"] == "degraded")
        runner = running.manager.get_runner(stuck.client_id)
        assert runner is not None and runner.state in (BotState.STARTING, BotState.RECONNECTING)
        assert (health["activeBots"], health["failedBots"], health["database"]) == (1, 0, "ok")
        assert health["lavalink"] == {"connected": 0, "total": 0}

        # It gets through: healthy again.
        stuck.identify_close_code = None
        await running.wait_for(stuck, BotState.READY)
        await health_until(running, lambda h: h["status"] == "ok")


async def test_no_connected_lavalink_node_degrades_health(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    async with FakeLavalink() as lavalink:
        settings: Settings = make_settings(
            discord_api_base=fake_discord.api_base,
            discord_gateway_url=fake_discord.gateway_url,
            identify_interval=0.0,
            lavalink_nodes=f"main={lavalink.uri}={lavalink.password}",
        )
        bots = [fake_discord.add_bot(name=f"Music {i}") for i in range(2)]
        for bot in bots:
            await store_bot(mongo, settings, bot)
        async with running_app(settings) as running:
            for bot in bots:
                await running.wait_for(bot, BotState.READY)
            health = await health_until(running, lambda h: h["lavalink"]["connected"] == 2)
            assert health["status"] == "ok" and health["lavalink"] == {"connected": 2, "total": 2}

            await lavalink.shutdown_node()
            health = await health_until(running, lambda h: h["lavalink"]["connected"] == 0)
            assert health["status"] == "degraded" and health["lavalink"]["total"] == 2
            assert health["activeBots"] == 2  # the bots themselves stay online

            await lavalink.restart()
            health = await health_until(running, lambda h: h["lavalink"]["connected"] == 2)
            assert health["status"] == "ok"


async def test_an_empty_lavalink_nodes_is_said_once_at_startup(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    bots = [fake_discord.add_bot() for _ in range(2)]
    for bot in bots:
        await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        for bot in bots:
            await running.wait_for(bot, BotState.READY)
        health = (await running.http.get("/health")).json()
        assert health["status"] == "ok" and health["lavalink"] == {"connected": 0, "total": 0}
    warnings = [r for r in caplog.records if r.getMessage().startswith("LAVALINK_NODES is empty")]
    assert len(warnings) == 1 and "audio backend is unavailable" in warnings[0].getMessage()
