"""Sharding: a bot too big for one gateway connection runs as discord.py's AutoShardedClient,
through the real discord.py against the fake's shards; small bots keep the plain client."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.backoff import Backoff
from app.bots.client import MusicBotClient, ShardedMusicBotClient
from app.bots.identify import IdentifyPacer
from app.bots.runner import BotRunner
from app.bots.status import BotState
from app.db.models import MusicBot
from app.settings import Settings
from tests.fakes.discord import FakeBot, FakeDiscord, shard_of
from tests.fakes.discord_payloads import new_snowflake
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]
WAIT = 30.0


def runner_of(running: RunningApp, bot: FakeBot) -> BotRunner:
    runner = running.manager.get_runner(bot.client_id)
    assert runner is not None
    return runner


def client_of(running: RunningApp, bot: FakeBot) -> MusicBotClient:
    client = runner_of(running, bot).client
    assert client is not None
    return client


async def join_guilds(fake: FakeDiscord, bot: FakeBot, shards: list[tuple[int, int] | None]) -> set[int]:
    ids: set[int] = set()
    for shard in shards:
        guild = fake.add_guild(shard=shard)
        await fake.add_bot_to_guild(bot, guild.id)
        ids.add(guild.id)
    return ids


def gateway_bot_calls(fake: FakeDiscord, bot: FakeBot) -> int:
    return sum(1 for r in fake.requests if r.path == "/gateway/bot" and r.client_id == bot.client_id)


async def bots_by_id(running: RunningApp) -> dict[str, dict[str, Any]]:
    response = await running.http.get("/bots")
    assert response.status_code == 200
    return {entry["clientId"]: entry for entry in response.json()["bots"]}


# -- pacing of a sharded bot's IDENTIFYs (deterministic clock) ---------------------------------


class _LowestJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_a_launch_spaces_the_shards_and_only_a_failed_shard_backs_off() -> None:
    now = 0.0
    backoff = Backoff(initial=8.0, maximum=300.0, rng=_LowestJitter())
    pacer = IdentifyPacer(backoff=backoff, spacing=5.0, clock=lambda: now)

    # The launch: shards 0, 1, 2 one after the other, each only Discord's 5 s after the last.
    for shard in range(3):
        now += pacer.delay(shard)
        assert now == 5.0 * shard
        pacer.identified(shard)
        pacer.ready(shard)
    assert pacer.short_sessions == 0

    # Shard 1's session (READY at 5 s) ends at 12 s: its next IDENTIFY is backed off (4 s, the
    # lowest jitter of 8 s) rather than only spaced (3 s after shard 2's).
    now += 2.0
    assert pacer.delay(1) == pytest.approx(4.0)
    assert pacer.short_sessions == 1 and pacer.last_session_length == pytest.approx(7.0)
    now += pacer.delay(1)
    pacer.identified(1)

    # The whole client fails: one backoff for the round (8 s now), then the shards only space.
    now += 1.0
    first = pacer.delay()
    assert first == pytest.approx(8.0)
    assert pacer.short_sessions == 2
    now += first
    for shard in range(3):
        wait = pacer.delay(shard)
        assert wait == (0.0 if shard == 0 else 5.0)
        now += wait
        pacer.identified(shard)

    pacer.held()
    now += 60.0
    assert [pacer.delay(shard) for shard in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.short_sessions == 0


# -- through the real discord.py ---------------------------------------------------------------


async def test_a_bot_over_the_limit_comes_up_sharded_in_all_its_guilds(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """Close 4011 on the plain IDENTIFY, then the shards /gateway/bot recommends; a small bot
    beside it keeps the plain client and never asks /gateway/bot."""
    fake_discord.max_guilds_per_shard = 2
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.5,
    )
    big, small = fake_discord.add_bot(name="Big"), fake_discord.add_bot(name="Small")
    big_guilds = await join_guilds(fake_discord, big, [(i % 3, 3) for i in range(5)])
    await join_guilds(fake_discord, small, [None])
    for bot in (big, small):
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(big, BotState.READY, timeout=WAIT)
        await running.wait_for(small, BotState.READY, timeout=WAIT)

        client = client_of(running, big)
        assert isinstance(client, ShardedMusicBotClient) and client.shard_count == 3
        assert {guild.id for guild in client.guilds} == big_guilds
        assert big.sharding_required_closes == 1
        assert big.identify_shards == [(0, 3), (1, 3), (2, 3)]
        assert set(fake_discord.shard_sessions(big)) == {0, 1, 2}
        # Every IDENTIFY is counted, the one refused with 4011 too.
        assert runner_of(running, big).status().identifies_24h == 4
        # The shards were spaced by IDENTIFY_INTERVAL (the fake notes when each arrived).
        times = big.identify_times
        assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))

        assert type(client_of(running, small)) is MusicBotClient
        assert small.identify_shards == [None] and gateway_bot_calls(fake_discord, small) == 0

        bots = await bots_by_id(running)
        assert bots[str(big.client_id)]["shards"] == 3 and bots[str(big.client_id)]["guilds"] == 5
        assert bots[str(small.client_id)]["shards"] == 1
        assert bots[str(big.client_id)]["status"] == "ready"

        # Every shard's socket is one the bot's owner must see closed before it lets the bot go.
        sockets = client.gateway_sockets()
        assert len(sockets) == 3
        assert len(client_of(running, small).gateway_sockets()) == 1
        # A hand-over (SIGTERM, rebalancing) stops the bot and proves every shard's socket closed.
        assert await running.manager.hand_over(big.client_id)
        assert all(socket.closed for socket in sockets) and not client.gateway_sockets()


async def test_one_shard_identifying_again_leaves_the_others_alone(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    fake_discord.max_guilds_per_shard = 1
    bot = fake_discord.add_bot(name="Two shards")
    await join_guilds(fake_discord, bot, [(0, 2), (1, 2)])
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY, timeout=WAIT)
        runner = runner_of(running, bot)
        sessions = fake_discord.shard_sessions(bot)
        identified = len(bot.identify_shards)

        await fake_discord.invalidate_session(bot, shard=1)
        await fake_discord.wait_for_identify(bot, count=bot.identify_count + 1, timeout=WAIT)
        await runner.wait_for_state(BotState.READY, timeout=WAIT)
        await running.wait_for(bot, BotState.READY, timeout=WAIT)
        assert bot.identify_shards[identified:] == [(1, 2)]
        assert fake_discord.shard_sessions(bot)[0] == sessions[0]
        assert fake_discord.shard_sessions(bot)[1] != sessions[1]
        assert len(client_of(running, bot).guilds) == 2

        # A shard that resumes alone brings the bot back to ready as well.
        await fake_discord.disconnect(bot, shard=0)
        await fake_discord.wait_for_resume(bot, timeout=WAIT)
        await running.wait_for(bot, BotState.READY, timeout=WAIT)
        assert client_of(running, bot).all_shards_up


async def test_the_shard_count_override_and_the_guild_count_check(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """`shard_count` on the record is used as is (no /gateway/bot); a bot recorded in
    SHARD_CHECK_GUILDS guilds asks /gateway/bot first and shards as recommended (no 4011), or
    keeps the plain client when Discord recommends one shard; an override too low fails clearly."""
    fake_discord.max_guilds_per_shard = 2
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        shard_check_guilds=3,
    )
    forced = fake_discord.add_bot(name="Forced to 2")
    await join_guilds(fake_discord, forced, [None])
    await store_bot(mongo, settings, forced, shard_count=2)
    known = fake_discord.add_bot(name="Known big")
    await join_guilds(fake_discord, known, [(i % 2, 2) for i in range(4)])
    await store_bot(mongo, settings, known, guild_count=4)
    modest = fake_discord.add_bot(name="Recorded big, one shard is enough")
    modest.shards = 1
    await join_guilds(fake_discord, modest, [None])
    await store_bot(mongo, settings, modest, guild_count=3)
    too_few = fake_discord.add_bot(name="Override too low")
    await join_guilds(fake_discord, too_few, [(i % 2, 2) for i in range(3)])
    await store_bot(mongo, settings, too_few, shard_count=1)
    async with running_app(settings) as running:
        for bot in (forced, known, modest):
            await running.wait_for(bot, BotState.READY, timeout=WAIT)
        await running.wait_for(too_few, BotState.FAILED, timeout=WAIT)

        assert forced.identify_shards == [(0, 2), (1, 2)] and gateway_bot_calls(fake_discord, forced) == 0
        assert client_of(running, forced).shards_total == 2
        assert known.identify_shards == [(0, 2), (1, 2)] and known.sharding_required_closes == 0
        assert gateway_bot_calls(fake_discord, known) == 1
        assert modest.identify_shards == [None] and gateway_bot_calls(fake_discord, modest) == 1
        assert type(client_of(running, modest)) is MusicBotClient

        failed = runner_of(running, too_few)
        assert failed.last_error is not None and "4011" in failed.last_error
        assert "shard_count (1) is too low" in failed.last_error
        assert too_few.sharding_required_closes == 1  # no retry on an operator's decision

        bots = await bots_by_id(running)
        assert [bots[str(b.client_id)]["shards"] for b in (forced, known, modest)] == [2, 2, 1]

        # A changed override restarts that bot (found by the hot reload) with the new count.
        records = mongo[settings.mongodb_database][MusicBot.Settings.name]
        await records.update_one({"client_id": forced.client_id}, {"$set": {"shard_count": 3}})
        # The restart replaces the runner: for a moment there is none, then one whose client
        # may not exist yet.
        async with asyncio.timeout(WAIT):
            while (
                (runner := running.manager.get_runner(forced.client_id)) is None
                or (client := runner.client) is None
                or client.shards_total != 3
            ):
                await asyncio.sleep(0.05)
        await running.wait_for(forced, BotState.READY, timeout=WAIT)
        assert forced.identify_shards[-3:] == [(0, 3), (1, 3), (2, 3)]


async def test_a_sharded_bot_that_outgrows_its_shards_is_resharded(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    """A shard's next IDENTIFY meets 4011 once the bot has grown: a new client with the shards
    Discord now recommends. A recommendation Discord itself keeps refusing fails the bot."""
    fake_discord.max_guilds_per_shard = 2

    async def join(bot: FakeBot, *, of_2: int, of_3: int) -> None:
        """A new guild on that shard of 2 and of 3 (both follow from the id's timestamp mod 6)."""
        guild_id = new_snowflake()
        while (shard_of(guild_id, 2), shard_of(guild_id, 3)) != (of_2, of_3):
            guild_id = new_snowflake()
        await fake_discord.add_bot_to_guild(bot, fake_discord.add_guild(guild_id=guild_id).id)

    bot = fake_discord.add_bot(name="Growing")
    for of_2, of_3 in ((0, 0), (1, 1), (1, 2)):
        await join(bot, of_2=of_2, of_3=of_3)
    await store_bot(mongo, fleet_settings, bot)
    stuck = fake_discord.add_bot(name="Discord recommends too few")
    stuck.shards = 2
    await join_guilds(fake_discord, stuck, [(0, 2)] * 3)  # shard 0 of 2 holds 3 > 2
    await store_bot(mongo, fleet_settings, stuck)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY, timeout=WAIT)
        assert client_of(running, bot).shards_total == 2

        # Two more guilds on shard 1 (4 > 2): its next IDENTIFY is refused, and Discord now
        # recommends ceil(5 / 2) = 3 shards, which hold 2, 2 and 1 of them.
        for of_3 in (0, 1):
            await join(bot, of_2=1, of_3=of_3)
        await fake_discord.invalidate_session(bot, shard=1)
        async with asyncio.timeout(WAIT):
            while (client := runner_of(running, bot).client) is None or client.shards_total != 3:
                await asyncio.sleep(0.05)
        await running.wait_for(bot, BotState.READY, timeout=WAIT)
        assert len(client_of(running, bot).guilds) == 5
        assert bot.sharding_required_closes == 2  # the first plain IDENTIFY, then shard 1's

        await running.wait_for(stuck, BotState.FAILED, timeout=WAIT)
        failed = runner_of(running, stuck)
        assert failed.last_error is not None and "even sharded as Discord recommended" in failed.last_error
        # Plain (refused), 2 shards (refused), 2 shards again (refused): then it stops trying.
        assert stuck.sharding_required_closes == 3 and stuck.identify_count == 2
