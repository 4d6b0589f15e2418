"""The fleet's guild index follows the bots' guilds: joins, leaves, a new session, a bot's removal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.guild_index import GuildIndex
from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot


async def until(predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_the_index_answers_both_ways() -> None:
    index = GuildIndex()
    index.replace(1, [10, 11])
    index.add(2, 10)
    assert index.bots_in(10) == [1, 2] and index.bots_in(11) == [1]
    index.replace(1, [11, 12])  # a new session: guild 10 is gone for bot 1
    assert index.bots_in(10) == [2] and index.bots_in(12) == [1]
    index.remove(2, 10)
    assert index.bots_in(10) == [] and index.guilds_of(2) == frozenset()
    index.forget_bot(1)
    assert index.bots_in(11) == [] and index.bots_in(12) == [] and index.guilds_of(1) == frozenset()
    index.remove(3, 99)  # unknown: nothing to do


async def test_the_index_follows_joins_leaves_and_removal(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    guild = fake_discord.add_guild()
    other = fake_discord.add_guild()
    a, b, c = (fake_discord.add_bot(name=f"Indexed {n}") for n in "ABC")
    for bot in (a, b):
        await fake_discord.add_bot_to_guild(bot, guild.id)
    await fake_discord.add_bot_to_guild(a, other.id)
    for bot in (a, b, c):
        await store_bot(mongo, fleet_settings, bot)

    async with running_app(fleet_settings) as running:
        await asyncio.gather(*(running.wait_for(bot, BotState.READY) for bot in (a, b, c)))
        router = running.manager.router

        def serving(guild_id: int) -> list[int]:
            return [service.bot_id for service in router.services_in_guild(guild_id)]

        # READY filled it; no scan of the runners is needed to answer.
        assert router.guilds.bots_in(guild.id) == [a.client_id, b.client_id]
        assert serving(guild.id) == [a.client_id, b.client_id]
        assert serving(other.id) == [a.client_id]

        await fake_discord.add_bot_to_guild(c, guild.id)  # a join
        await until(lambda: router.guilds.bots_in(guild.id) == [a.client_id, b.client_id, c.client_id])
        assert serving(guild.id) == [a.client_id, b.client_id, c.client_id]

        await fake_discord.remove_bot_from_guild(b, guild.id)  # a leave
        await until(lambda: router.guilds.bots_in(guild.id) == [a.client_id, c.client_id])
        assert serving(guild.id) == [a.client_id, c.client_id]
        assert router.guilds.guilds_of(b.client_id) == frozenset()

        # A new session (op 9: discord.py identifies again and rebuilds its guilds) keeps it true.
        await fake_discord.invalidate_session(c)
        await fake_discord.wait_for_identify(c, count=2)
        await running.wait_for(c, BotState.READY)
        await until(lambda: serving(guild.id) == [a.client_id, c.client_id])

        # The bot is removed from the fleet (what DELETE /bots and a disable do): it is forgotten.
        assert await running.manager.sync_bot(a.client_id, None) == "stopped"
        assert router.guilds.guilds_of(a.client_id) == frozenset()
        assert router.guilds.bots_in(guild.id) == [c.client_id]
        assert router.guilds.bots_in(other.id) == []
        assert serving(guild.id) == [c.client_id]
        client = running.manager.get_bot_for_guild(guild.id)
        assert client is not None and client.expected_client_id == c.client_id
