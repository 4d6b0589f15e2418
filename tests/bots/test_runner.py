"""Supervision of one bot: crash loops are paced, guild sync survives anything."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots import runner as runner_module
from app.bots.backoff import Backoff
from app.bots.identify import IdentifyPacer
from app.bots.runner import BotRunner
from app.bots.status import BotState
from app.db import queries
from app.db.models import MusicBot, ServerMusicBot, ServerStatus
from app.settings import Settings
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


async def until(predicate: Any, *, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def runner_of(running: Any, bot: FakeBot) -> BotRunner:
    runner = running.manager.get_runner(bot.client_id)
    assert runner is not None
    return runner


# -- pacing -----------------------------------------------------------------------------------


class _LowestJitter(random.Random):
    """The worst case for the bound: every jittered delay as short as it can be."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_pacer_bounds_a_crash_loop_at_the_default_settings() -> None:
    """Defaults (5 s initial, 300 s max, 5 s spacing), a session that dies 2 s after READY:
    at most 6 IDENTIFYs in 40 s, whatever the jitter."""
    now = 0.0
    pacer = IdentifyPacer(
        backoff=Backoff(initial=5.0, maximum=300.0, rng=_LowestJitter()), spacing=5.0, clock=lambda: now
    )
    identifies: list[float] = []
    while True:
        now += pacer.delay()
        if now > 40.0:
            break
        pacer.identified()
        identifies.append(now)
        now += 0.1
        pacer.ready()
        now += 2.0  # ... and the session dies
    assert len(identifies) <= 6, identifies
    assert pacer.short_sessions >= 4 and pacer.last_session_length == pytest.approx(2.0)


def test_pacer_forgets_failures_once_a_session_held() -> None:
    now = 0.0
    backoff = Backoff(initial=5.0, maximum=300.0, rng=_LowestJitter())
    pacer = IdentifyPacer(backoff=backoff, spacing=5.0, clock=lambda: now)
    assert pacer.delay() == 0.0  # the first IDENTIFY never waits
    for _ in range(4):
        pacer.identified()
        now += 1.0
        pacer.delay()
        now += pacer.delay()
    assert pacer.short_sessions == 4
    pacer.identified()
    pacer.ready()
    now += 120.0
    pacer.held()
    assert pacer.delay() == 0.0  # Discord's spacing is long past, no backoff left
    pacer.identified()
    now += 1.0
    assert pacer.delay() == pytest.approx(4.0)  # spacing, then backoff from its start again
    assert backoff.next_delay() == pytest.approx(5.0)


# -- crash loops through the fake --------------------------------------------------------------


@pytest.mark.parametrize(
    ("close_code", "handshake_wait_max"),
    [
        pytest.param(None, 10.0, id="unparseable-event-escapes-discord.py"),
        pytest.param(4009, 10.0, id="session-timeout-reidentifies-inside-discord.py"),
        pytest.param(4009, 0.0, id="long-waits-drop-the-socket"),
    ],
)
async def test_a_crash_loop_spends_few_identifies_and_says_why(
    fake_discord: FakeDiscord,
    make_settings: Any,
    mongo: Mongo,
    monkeypatch: pytest.MonkeyPatch,
    close_code: int | None,
    handshake_wait_max: float,
) -> None:
    """The issue's 40 s at 5 s initial delay, scaled by 1/25: the same bound (<= 6 IDENTIFYs)
    must hold over 5 s with a 0.2 s initial delay. READY used to reset the backoff: a session
    dying 0.3 s after READY then re-identified every half second or faster."""
    monkeypatch.setattr(runner_module, "HANDSHAKE_WAIT_MAX", handshake_wait_max)
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        bot_retry_initial_delay=0.2,
        bot_retry_max_delay=4.0,
        bot_stable_after=1.0,
    )
    bot = fake_discord.add_bot(name="Crashing")
    bot.crash_after_ready = 0.3  # after discord.py's READY wait for guilds (0.1 s here)
    bot.crash_close_code = close_code
    steady = fake_discord.add_bot(name="Steady")
    for each in (bot, steady):
        await store_bot(mongo, settings, each)
    loop = asyncio.get_running_loop()
    async with running_app(settings) as running:
        await fake_discord.wait_for_identify(bot, timeout=30)
        first = bot.identify_times[0]
        await asyncio.sleep(max(0.0, first + 5.0 - loop.time()))
        assert fake_discord.identifies_within(bot, first, 5.0) <= 6, bot.identify_times
        runner = runner_of(running, bot)
        assert runner.last_error is not None
        assert "after READY" in runner.last_error and "next IDENTIFY in" in runner.last_error
        if close_code is None:
            assert "KeyError" in runner.last_error  # what discord.py could not parse
        # The other bot of the fleet never noticed.
        assert runner_of(running, steady).state is BotState.READY and steady.identify_count == 1

        # The server stops crashing: the next session holds, and the error is cleared.
        bot.crash_after_ready = None
        await until(lambda: runner.state is BotState.READY and runner.last_error is None)
        assert runner.down_since is None


# -- guild sync -------------------------------------------------------------------------------


async def records(mongo: Mongo, settings: Settings, bot: FakeBot) -> dict[int, str]:
    database = mongo[settings.mongodb_database]
    stored = await database[MusicBot.Settings.name].find_one({"client_id": bot.client_id})
    assert stored is not None
    cursor = database[ServerMusicBot.Settings.name].find({"music_bot_id": stored["_id"]})
    return {doc["server_id"]: doc["status"] async for doc in cursor}


async def eventually_records(
    mongo: Mongo, settings: Settings, bot: FakeBot, expected: dict[int, str], timeout: float = 30.0
) -> None:
    async with asyncio.timeout(timeout):
        while await records(mongo, settings, bot) != expected:
            await asyncio.sleep(0.05)


async def test_guild_sync_waits_for_unavailable_guilds(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    """A guild still unavailable after READY (`guild.me` is None) used to kill the sync task
    with an AttributeError: no record was ever written again for that bot."""
    bot = fake_discord.add_bot()
    fine, down, later = fake_discord.add_guild(), fake_discord.add_guild(), fake_discord.add_guild()
    for guild in (fine, down):
        await fake_discord.add_bot_to_guild(bot, guild.id)
    down.outage = True
    await store_bot(mongo, fleet_settings, bot)
    active = ServerStatus.ACTIVE.value
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        client = runner_of(running, bot).client
        assert client is not None
        unavailable = client.get_guild(down.id)
        assert unavailable is not None and unavailable.unavailable
        await eventually_records(mongo, fleet_settings, bot, {fine.id: active})
        # The loop is alive: a join is recorded, then the guild that comes back.
        await fake_discord.add_bot_to_guild(bot, later.id)
        await eventually_records(mongo, fleet_settings, bot, {fine.id: active, later.id: active})
        await fake_discord.end_guild_outage(down.id)
        expected = {fine.id: active, later.id: active, down.id: active}
        await eventually_records(mongo, fleet_settings, bot, expected)


async def test_an_unexpected_guild_sync_error_is_logged_and_retried(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: Mongo,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = fake_discord.add_bot()
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(bot, guild.id)
    await store_bot(mongo, fleet_settings, bot)
    real = queries.reconcile_bot_guilds
    calls = 0

    async def fails_once(*args: Any, **kwargs: Any) -> tuple[int, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("something nobody expected")
        return await real(*args, **kwargs)

    monkeypatch.setattr(queries, "reconcile_bot_guilds", fails_once)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        await eventually_records(mongo, fleet_settings, bot, {guild.id: ServerStatus.ACTIVE.value})
    failures = [r for r in caplog.records if "guild sync failed unexpectedly" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert str(bot.client_id) in failures[0].getMessage()
