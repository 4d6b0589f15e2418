"""The fleet follows music_bots while it runs: through a change stream and through polling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.db.models import MusicBot
from app.settings import Settings
from app.tokens import TokenCipher, token_fingerprint
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


async def until_runner(running: RunningApp, client_id: int, *states: BotState, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while (runner := running.manager.get_runner(client_id)) is None:
            await asyncio.sleep(0.01)
    await runner.wait_for_state(*states, timeout=timeout)


async def until_stopped(running: RunningApp, client_id: int, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while running.manager.get_runner(client_id) is not None:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("mode", ["change_stream", "poll"])
async def test_insert_disable_rename_retoken_and_delete(
    mode: str, fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        reload_mode=mode,
        reload_poll_interval=0.1,
    )
    steady = fake_discord.add_bot(name="Steady")
    await store_bot(mongo, settings, steady)
    sleeper = fake_discord.add_bot(name="Sleeper")
    await store_bot(mongo, settings, sleeper, enabled=False)
    bots = mongo[settings.mongodb_database][MusicBot.Settings.name]
    async with running_app(settings) as running:
        await running.wait_for(steady, BotState.READY)
        await asyncio.wait_for(running.manager.watcher.watching.wait(), 30)
        assert running.manager.watcher.active_mode == mode
        steady_runner = running.manager.get_runner(steady.client_id)
        listed = {b["clientId"]: b["status"] for b in (await running.http.get("/bots")).json()["bots"]}
        assert listed == {str(steady.client_id): "ready", str(sleeper.client_id): "disabled"}

        # A disabled bot deleted: no longer listed (it never ran).
        await bots.delete_one({"client_id": sleeper.client_id})
        async with asyncio.timeout(30):
            while str(sleeper.client_id) in {
                b["clientId"] for b in (await running.http.get("/bots")).json()["bots"]
            }:
                await asyncio.sleep(0.02)
        assert sleeper.identify_count == 0

        # Inserted: starts (how fast is measured in benchmarks/hot_reload.py, not asserted here).
        newcomer = fake_discord.add_bot(name="Newcomer")
        await store_bot(mongo, settings, newcomer)
        await until_runner(running, newcomer.client_id, BotState.READY)

        # Disabled: stops; enabled again: starts.
        await bots.update_one({"client_id": newcomer.client_id}, {"$set": {"enabled": False}})
        await until_stopped(running, newcomer.client_id)
        listed = {b["clientId"]: b["status"] for b in (await running.http.get("/bots")).json()["bots"]}
        assert listed[str(newcomer.client_id)] == "disabled"  # still visible to operators
        async with asyncio.timeout(30):  # the fake sees the close frame a moment later
            while fake_discord.is_connected(newcomer):
                await asyncio.sleep(0.01)
        await bots.update_one({"client_id": newcomer.client_id}, {"$set": {"enabled": True}})
        await until_runner(running, newcomer.client_id, BotState.READY)

        # Renamed: that bot restarts under its new name.
        first_runner = running.manager.get_runner(newcomer.client_id)
        await bots.update_one({"client_id": newcomer.client_id}, {"$set": {"name": "Renamed"}})
        async with asyncio.timeout(30):
            while (r := running.manager.get_runner(newcomer.client_id)) is None or r is first_runner:
                await asyncio.sleep(0.01)
        await until_runner(running, newcomer.client_id, BotState.READY)
        assert [b["name"] for b in (await running.http.get("/bots")).json()["bots"]].count("Renamed") == 1

        # A new token (the old one was reset): restarts with it.
        new_token = make_fake_token(newcomer.client_id)
        fake_discord.set_token(newcomer, new_token)
        cipher = TokenCipher(settings.encryption_keys)
        await bots.update_one(
            {"client_id": newcomer.client_id},
            {
                "$set": {
                    "token_ciphertext": cipher.encrypt(new_token),
                    "token_fingerprint": token_fingerprint(new_token),
                }
            },
        )
        await fake_discord.wait_for_identify(newcomer, count=3)
        await until_runner(running, newcomer.client_id, BotState.READY)

        # Deleted: stops.
        await bots.delete_one({"client_id": newcomer.client_id})
        await until_stopped(running, newcomer.client_id)

        async def listing() -> set[str]:
            return {b["clientId"] for b in (await running.http.get("/bots")).json()["bots"]}

        async with asyncio.timeout(30):  # no longer listed, once the fleet forgot it too
            while await listing() != {str(steady.client_id)}:
                await asyncio.sleep(0.02)

        # Nothing else was touched.
        assert running.manager.get_runner(steady.client_id) is steady_runner
        assert steady.identify_count == 1 and fake_discord.is_connected(steady)


@pytest.mark.parametrize("change", ["delete", "disable"])
async def test_a_stale_reconcile_never_resurrects_a_bot(
    change: str, fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """A reconcile pass reads the collection, then works through the bots one by one. A bot
    deleted or disabled through the API meanwhile used to be started again from that read."""
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        admin_api_token="test-admin-token",
        reload_mode="poll",
        reload_poll_interval=3600,  # only the pass this test runs, at the moment it chooses
    )
    first, victim = fake_discord.add_bot(name="First"), fake_discord.add_bot(name="Victim")
    for bot in (first, victim):
        await store_bot(mongo, settings, bot)
    admin = {"Authorization": "Bearer test-admin-token"}
    async with running_app(settings) as running:
        for bot in (first, victim):
            await running.wait_for(bot, BotState.READY)
        manager = running.manager
        # Both renamed behind the manager's back: the pass has work for both (a bot running exactly
        # as read is skipped, which could resurrect nothing).
        records = mongo[settings.mongodb_database][MusicBot.Settings.name]
        for bot in (first, victim):
            await records.update_one({"client_id": bot.client_id}, {"$set": {"name": f"{bot.name} renamed"}})
        # Hold the first bot's lock: the pass reads every record, then waits on it.
        lock = manager._bot_lock(first.client_id)  # pyright: ignore[reportPrivateUsage]
        await lock.acquire()
        reconcile = asyncio.create_task(manager.watcher.reconcile_all())
        async with asyncio.timeout(10):
            while not lock._waiters:  # pyright: ignore[reportAttributeAccessIssue]  # the pass is waiting
                await asyncio.sleep(0.01)
        if change == "delete":
            response = await running.http.delete(f"/bots/{victim.client_id}", headers=admin)
        else:
            body = {"enabled": False}
            response = await running.http.patch(f"/bots/{victim.client_id}", json=body, headers=admin)
        assert response.status_code in (200, 204)
        assert manager.get_runner(victim.client_id) is None
        lock.release()
        await asyncio.wait_for(reconcile, 10)
        assert manager.get_runner(victim.client_id) is None
        assert not fake_discord.is_connected(victim)
        assert manager.get_runner(first.client_id) is not None
