"""The gateway as configured, readable handshake failures, and one log line per failed reconnect."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
async def proxied_discord(restore_discord_endpoints: None) -> AsyncIterator[FakeDiscord]:
    """A fake Discord whose gateway sits on a path of its own, as behind a proxy."""
    fake = FakeDiscord(heartbeat_interval_ms=30_000, gateway_path="/gateway")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until_logged(
    caplog: pytest.LogCaptureFixture, matches: Callable[[logging.LogRecord], bool], count: int
) -> list[logging.LogRecord]:
    """Wait (generously) until `count` captured records match."""
    async with asyncio.timeout(30):
        while len(found := [r for r in caplog.records if matches(r)]) < count:
            await asyncio.sleep(0.05)
    return found


def _tracebacks_above_debug(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno > logging.DEBUG and (r.exc_info or r.exc_text)]


async def test_a_gateway_path_is_used_as_configured(
    proxied_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    settings: Settings = make_settings(
        discord_api_base=proxied_discord.api_base,
        discord_gateway_url=proxied_discord.gateway_url,  # ws://127.0.0.1:P/gateway, no slash
        identify_interval=0.0,
    )
    assert settings.discord_gateway_url.endswith("/gateway")
    bot = proxied_discord.add_bot(name="Behind a proxy")
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        assert await running.wait_for(bot, BotState.READY) is BotState.READY
        assert proxied_discord.is_connected(bot)


async def test_a_failed_handshake_is_a_readable_last_error(
    proxied_discord: FakeDiscord, make_settings: Any, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"ws://127.0.0.1:{proxied_discord.port}/not-the-gateway"
    settings: Settings = make_settings(
        discord_api_base=proxied_discord.api_base, discord_gateway_url=wrong, identify_interval=0.0
    )
    bot = proxied_discord.add_bot(name="Wrong path")
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await until_logged(caplog, lambda r: "could not connect" in r.getMessage(), 2)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None
        expected = f"gateway handshake failed: HTTP 404 at {wrong}"
        assert runner.last_error == expected
        public = {b["clientId"]: b for b in (await running.http.get("/bots")).json()["bots"]}
        assert public[str(bot.client_id)]["lastError"] == expected
        assert public[str(bot.client_id)]["status"] in {"starting", "reconnecting"}
    assert not any("AttributeError" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert not _tracebacks_above_debug(caplog)


async def test_an_unreachable_gateway_is_one_line_per_attempt(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.setLevel(logging.DEBUG)  # the conftest captures INFO and up; the tracebacks are DEBUG
    port = _closed_port()
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=f"ws://127.0.0.1:{port}/",
        identify_interval=0.0,
    )
    bots = [fake_discord.add_bot(name=f"Offline {i}") for i in range(2)]
    for bot in bots:
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        for bot in bots:
            label = f"Bot {bot.name!r} ({bot.client_id}) could not connect"
            lines = await until_logged(caplog, lambda r, label=label: r.getMessage().startswith(label), 2)
            for line in lines:
                assert line.levelno == logging.WARNING
                assert f"gateway unreachable: cannot connect to 127.0.0.1:{port}" in line.getMessage()
                assert "retrying on a new client in" in line.getMessage()
            runner = running.manager.get_runner(bot.client_id)
            assert runner is not None and runner.last_error is not None
            assert runner.last_error.startswith(f"gateway unreachable: cannot connect to 127.0.0.1:{port}")
    # The tracebacks are still there for an investigation, at DEBUG only.
    assert not _tracebacks_above_debug(caplog)
    assert any(r.name == "discord.client.reconnects" and r.exc_text for r in caplog.records)
    # discord.py's own line before its (doomed) first-connection retry is not shown twice.
    assert not any(r.getMessage().startswith("Attempting a reconnect") for r in caplog.records)


async def test_a_gateway_outage_after_ready_collapses_each_reconnect(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    bot = fake_discord.add_bot(name="Steady")
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        await fake_discord.gateway_outage(503)
        prefix = f"Bot {bot.name!r} ({bot.client_id}): gateway connection failed"
        lines = await until_logged(caplog, lambda r: r.getMessage().startswith(prefix), 2)
        for line in lines:
            assert line.levelno == logging.WARNING and line.name == "discord.client"
            message = line.getMessage()
            assert f"gateway handshake failed: HTTP 503 at {fake_discord.gateway_url}" in message
            assert "discord.py reconnects in" in message
            assert "\n" not in message
        assert not _tracebacks_above_debug(caplog)

        fake_discord.gateway_restored()
        await fake_discord.wait_for_resume(bot, timeout=30)
        assert await running.wait_for(bot, BotState.READY) is BotState.READY
        assert bot.identify_count == 1  # it resumed its session: no IDENTIFY spent
