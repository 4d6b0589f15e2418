"""The fleet end to end: the real lifespan, discord.py, Beanie and PyMongo against the fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import discord.http
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.db import queries
from app.db.models import MusicBot, ServerMusicBot, ServerStatus
from app.settings import Settings
from app.tokens import TokenCipher, generate_key
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


async def assignments(mongo: Mongo, settings: Settings, bot: FakeBot) -> dict[int, dict[str, Any]]:
    database = mongo[settings.mongodb_database]
    stored = await database[MusicBot.Settings.name].find_one({"client_id": bot.client_id})
    assert stored is not None
    cursor = database[ServerMusicBot.Settings.name].find({"music_bot_id": stored["_id"]})
    return {doc["server_id"]: doc async for doc in cursor}


async def eventually(check: Any, timeout: float = 30.0) -> None:
    """Poll an async predicate: database writes follow gateway events asynchronously."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def test_good_bots_run_and_bad_ones_fail_alone(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    guild = fake_discord.add_guild(member_count=25)
    good = [fake_discord.add_bot(name=f"Good {i}") for i in range(3)]
    for bot in good:
        await fake_discord.add_bot_to_guild(bot, guild.id)
        await store_bot(mongo, fleet_settings, bot)
    revoked = fake_discord.add_bot(name="Revoked")
    await fake_discord.revoke_token(revoked)
    await store_bot(mongo, fleet_settings, revoked)
    undecryptable = fake_discord.add_bot(name="Wrong key")
    await store_bot(
        mongo,
        fleet_settings,
        undecryptable,
        ciphertext=TokenCipher([generate_key()]).encrypt(undecryptable.token),
    )
    disabled = fake_discord.add_bot(name="Disabled")
    await store_bot(mongo, fleet_settings, disabled, enabled=False)

    async with running_app(fleet_settings) as running:
        for bot in good:
            assert await running.wait_for(bot, BotState.READY) is BotState.READY
        assert await running.wait_for(revoked, BotState.FAILED) is BotState.FAILED
        assert await running.wait_for(undecryptable, BotState.FAILED) is BotState.FAILED
        assert running.manager.get_runner(disabled.client_id) is None
        assert disabled.identify_count == 0

        health = (await running.http.get("/health")).json()
        assert health["status"] == "degraded"
        assert (health["activeBots"], health["totalBots"], health["failedBots"]) == (3, 5, 2)
        assert health["database"] == "ok"
        assert health["uptime"] >= 0

        response = await running.http.get("/bots")
        bots = {b["clientId"]: b for b in response.json()["bots"]}
        # Every stored bot is listed: the disabled one too, never started.
        assert set(bots) == {str(b.client_id) for b in [*good, revoked, undecryptable, disabled]}
        assert bots[str(disabled.client_id)] == bots[str(disabled.client_id)] | {
            "name": "Disabled",
            "status": "disabled",
            "latencyMs": None,
            "lastError": None,
        }
        for bot in good:
            entry = bots[str(bot.client_id)]
            assert entry == entry | {
                "name": bot.name,
                "status": "ready",
                "guilds": 1,
                "users": 25,
                "lastError": None,
            }
            assert isinstance(entry["latencyMs"], float | int | None)
        assert "401" in bots[str(revoked.client_id)]["lastError"]
        assert "decrypted" in bots[str(undecryptable.client_id)]["lastError"]
        assert revoked.identify_count == 0  # a rejected token never spends an IDENTIFY

        stored = await mongo[fleet_settings.mongodb_database][MusicBot.Settings.name].find_one(
            {"client_id": good[0].client_id}
        )
        assert stored is not None
        for text in (response.text, (await running.http.get("/health")).text, str(stored)):
            for bot in [*good, revoked, undecryptable]:
                assert bot.token not in text
        for text in (response.text,):
            assert stored["token_ciphertext"] not in text
            assert stored["token_fingerprint"] not in text


async def test_twenty_bots_ready_and_a_revoked_one_fails_alone(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bots = [fake_discord.add_bot(name=f"Bot {i:02d}") for i in range(20)]
    for bot in bots:
        await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await asyncio.gather(*(running.wait_for(bot, BotState.READY) for bot in bots))
        listed = (await running.http.get("/bots")).json()["bots"]
        assert [b["status"] for b in listed] == ["ready"] * 20

        victim = bots[7]
        await fake_discord.revoke_token(victim)
        assert await running.wait_for(victim, BotState.FAILED) is BotState.FAILED
        listed = {b["clientId"]: b for b in (await running.http.get("/bots")).json()["bots"]}
        assert "4004" in listed[str(victim.client_id)]["lastError"]
        assert "revoked" in listed[str(victim.client_id)]["lastError"]
        others = [b for cid, b in listed.items() if cid != str(victim.client_id)]
        assert {b["status"] for b in others} == {"ready"}
        assert all(bot.identify_count == 1 for bot in bots)


async def test_guild_join_leave_and_reconnect_records(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot(name="Tracker")
    stay, leave_later, leave_offline, join_later = (
        fake_discord.add_guild(member_count=n) for n in (5, 7, 11, 13)
    )
    for guild in (stay, leave_later, leave_offline):
        await fake_discord.add_bot_to_guild(bot, guild.id)
    await store_bot(mongo, fleet_settings, bot)

    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)

        async def active() -> set[int]:
            records = await assignments(mongo, fleet_settings, bot)
            return {gid for gid, doc in records.items() if doc["status"] == ServerStatus.ACTIVE}

        async def expect_active(expected: set[int]) -> bool:
            return await active() == expected

        await eventually(lambda: expect_active({stay.id, leave_later.id, leave_offline.id}))
        first = await assignments(mongo, fleet_settings, bot)
        assert all(doc["activated_at"] is not None and doc["removed_at"] is None for doc in first.values())

        # Live join and leave.
        await fake_discord.add_bot_to_guild(bot, join_later.id)
        await fake_discord.remove_bot_from_guild(bot, leave_later.id)
        await eventually(lambda: expect_active({stay.id, leave_offline.id, join_later.id}))
        records = await assignments(mongo, fleet_settings, bot)
        assert records[leave_later.id]["status"] == ServerStatus.REMOVED
        assert records[leave_later.id]["removed_at"] is not None

        # Removed while the bot is offline: the next READY reconciles it. 4009 cannot be resumed,
        # so the bot re-IDENTIFYs and gets a fresh guild list.
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None
        bot.guild_ids.discard(leave_offline.id)
        await fake_discord.disconnect(bot, code=4009)
        await fake_discord.wait_for_identify(bot, count=2)
        await running.wait_for(bot, BotState.READY)
        await eventually(lambda: expect_active({stay.id, join_later.id}))
        after = await assignments(mongo, fleet_settings, bot)
        # A repeated READY neither duplicates records nor moves activated_at.
        assert after[stay.id]["activated_at"] == first[stay.id]["activated_at"]
        assert after[leave_offline.id]["status"] == ServerStatus.REMOVED
        assert (
            await mongo[fleet_settings.mongodb_database][ServerMusicBot.Settings.name].count_documents({})
            == 4
        )

        stored = await mongo[fleet_settings.mongodb_database][MusicBot.Settings.name].find_one(
            {"client_id": bot.client_id}
        )
        assert stored is not None
        assert (stored["guild_count"], stored["user_count"]) == (2, 5 + 13)


async def test_resumable_disconnect_keeps_the_session(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot()
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        await fake_discord.disconnect(bot, code=4000)
        await fake_discord.wait_for_resume(bot)
        await running.wait_for(bot, BotState.READY)
        assert bot.identify_count == 1


async def test_missing_intents_fail_without_retry(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot()
    bot.identify_close_code = 4014
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.FAILED)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.last_error is not None
        assert "4014" in runner.last_error
        await asyncio.sleep(0.3)
        log = await mongo[fleet_settings.mongodb_database]["bot_identify_log"].find_one(
            {"client_id": bot.client_id}
        )
        assert log is not None and len(log["timestamps"]) == 1  # tried once, never retried
        assert bot.last_identify_intents == 1 | 128  # guilds | voice_states, nothing privileged


async def test_identify_budget_stops_a_crash_loop(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        identify_budget_share=0.003,  # 3 IDENTIFYs a day
    )
    bot = fake_discord.add_bot(name="Flapping")
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.READY)
        for _ in range(2):  # each non-resumable close spends one more IDENTIFY
            count = bot.identify_count
            await fake_discord.disconnect(bot, code=4009)
            await fake_discord.wait_for_identify(bot, count=count + 1)
        await fake_discord.disconnect(bot, code=4009)
        await running.wait_for(bot, BotState.FAILED)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.last_error is not None
        assert "budget" in runner.last_error
        assert bot.identify_count == 3
    # The count is persisted: a restart does not reset it.
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.FAILED)
        assert bot.identify_count == 3


async def test_transient_errors_retry_on_a_fresh_client(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot()
    await store_bot(mongo, fleet_settings, bot)
    original_base = fleet_settings.discord_api_base
    broken = fleet_settings.model_copy(update={"discord_api_base": "http://127.0.0.1:9/api/v10"})
    async with running_app(broken) as running:
        await running.wait_for(bot, BotState.RECONNECTING)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.last_error
        # The operator fixes the proxy; the next retry (a fresh client) gets through.
        discord.http.Route.BASE = original_base
        await running.wait_for(bot, BotState.READY, timeout=30)


async def test_stop_bot_closes_only_that_bot(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    first, second = fake_discord.add_bot(), fake_discord.add_bot()
    for bot in (first, second):
        await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await asyncio.gather(*(running.wait_for(b, BotState.READY) for b in (first, second)))
        disabled, _ = await queries.update_music_bot(first.client_id, enabled=False)
        # The API's path (the hot-reload watcher may see the change first: either stops it once).
        await running.manager.sync_bot(first.client_id, disabled)
        assert await running.manager.sync_bot(first.client_id, disabled) == "none"
        assert running.manager.get_runner(first.client_id) is None
        async with asyncio.timeout(30):  # the fake sees the close frame a moment later
            while fake_discord.is_connected(first):
                await asyncio.sleep(0.02)
        assert not fake_discord.is_connected(first)
        assert fake_discord.is_connected(second)
        assert running.manager.get_bot_for_guild(123) is None
    assert not fake_discord.is_connected(second)


async def test_get_bot_for_guild(fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo) -> None:
    guild = fake_discord.add_guild()
    inside, outside = fake_discord.add_bot(), fake_discord.add_bot()
    await fake_discord.add_bot_to_guild(inside, guild.id)
    for bot in (inside, outside):
        await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await asyncio.gather(*(running.wait_for(b, BotState.READY) for b in (inside, outside)))
        client = running.manager.get_bot_for_guild(guild.id)
        assert client is not None and client.user is not None and client.user.id == inside.client_id


async def test_health_is_degraded_while_an_enabled_bot_has_no_live_worker(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """WORKER_CAPACITY 1 with two enabled bots: one runs, the other has no owner, and /health,
    /bots and /workers say so; when the running bot is disabled the worker takes the other."""
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        worker_capacity=1,
    )
    first, second = fake_discord.add_bot(name="First"), fake_discord.add_bot(name="Second")
    for bot in (first, second):
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        me = running.manager.fleet.me

        async def statuses() -> dict[str, dict[str, Any]]:
            return {b["clientId"]: b for b in (await running.http.get("/bots")).json()["bots"]}

        async def one_runs() -> bool:
            listed = await statuses()
            return sorted(str(b["worker"]) for b in listed.values()) == sorted([me, "None"]) and any(
                b["status"] == "ready" for b in listed.values()
            )

        await eventually(one_runs)
        health = (await running.http.get("/health")).json()
        assert health | {"status": "degraded", "unownedBots": 1, "workers": 1, "totalBots": 2} == health
        listed = await statuses()
        (running_id,) = [client_id for client_id, b in listed.items() if b["worker"] == me]
        (waiting_id,) = [client_id for client_id, b in listed.items() if b["worker"] is None]
        assert listed[waiting_id]["status"] == "stopped"
        (worker,) = (await running.http.get("/workers")).json()["workers"]
        assert worker | {"id": me, "me": True, "capacity": 1, "state": "active"} == worker

        disabled, _ = await queries.update_music_bot(int(running_id), enabled=False)
        await running.manager.sync_bot(int(running_id), disabled)

        async def other_runs() -> bool:
            listed = await statuses()
            health = (await running.http.get("/health")).json()
            return (
                listed[waiting_id]["worker"] == me
                and listed[waiting_id]["status"] == "ready"
                and listed[running_id]["status"] == "disabled"
                and (health["status"], health["unownedBots"], health["totalBots"]) == ("ok", 0, 1)
            )

        await eventually(other_runs)
        waiting = first if str(first.client_id) == waiting_id else second
        assert waiting.max_concurrent_sessions == 1
