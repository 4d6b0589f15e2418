"""One worker in-process, its leases changed behind its back: it stops at once, and comes back."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.fleet import balancer as balancer_module
from app.bots.fleet import coordinator
from app.bots.fleet.view import FleetView
from app.bots.status import BotState
from app.db import leases as lease_db
from app.db.models import BotLease, MusicBot, WorkerRecord
from app.settings import Settings
from tests.bots.fleet.workers import until
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]
WAIT = 30.0


def epoch(running: RunningApp, bot: FakeBot) -> int | None:
    runner = running.manager.get_runner(bot.client_id)
    return None if runner is None else runner.epoch


async def test_a_lease_taken_by_another_worker_stops_the_bot_at_once(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    """Another worker's claim (a newer epoch) reaches this one through its change stream: the bot
    closes without waiting for anything. That worker is not registered (it is gone): once the
    database confirms it, its lease is freed, and this worker claims the bot again."""
    bot = fake_discord.add_bot()
    await store_bot(mongo, fleet_settings, bot)
    leases = mongo[fleet_settings.mongodb_database][BotLease.Settings.name]
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        first = epoch(running, bot)
        old = running.manager.get_runner(bot.client_id)
        assert first is not None and old is not None
        await leases.update_one(
            {"_id": bot.client_id}, {"$set": {"owner": "elsewhere:1:0"}, "$inc": {"epoch": 1}}
        )
        # The runner of the lost epoch stops. (Not "the fake sees no session": the bot may be
        # claimed and connected again before a poll would see the gap.)
        await old.wait_for_state(BotState.STOPPED, timeout=WAIT)
        await until(lambda: (epoch(running, bot) or 0) >= first + 2, what="the bot to be claimed again")
        await running.wait_for(bot, BotState.READY)
    assert bot.max_concurrent_sessions == 1


async def test_a_reload_racing_the_stream_keeps_the_stream_version(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, monkeypatch: Any
) -> None:
    """A full reload of the leases whose read predates a change the stream has just applied (the
    race behind the test above failing now and then): the mirror keeps the stream's version, so
    the foreign owner stays visible, its lease is freed once its worker is confirmed gone, and the
    bot comes back here. (Before, the stale read put the old lease back; nothing freed the bot
    until the next periodic reload, 30 s later.)"""
    bot = fake_discord.add_bot()
    await store_bot(mongo, fleet_settings, bot)
    leases = mongo[fleet_settings.mongodb_database][BotLease.Settings.name]
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        first = epoch(running, bot)
        assert first is not None
        view, balancer = running.manager.fleet.view, running.manager.fleet.balancer
        real_read, real_reload = lease_db.all_leases, view.reload_leases
        reading, release, reloaded = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def slow_read() -> list[BotLease]:
            read = await real_read()
            monkeypatch.setattr(lease_db, "all_leases", real_read)  # only this one read is slow
            reading.set()
            await release.wait()
            return read

        async def reload() -> None:
            await real_reload()
            reloaded.set()

        monkeypatch.setattr(lease_db, "all_leases", slow_read)
        monkeypatch.setattr(view, "reload_leases", reload)
        view.needs_reload()
        async with asyncio.timeout(WAIT):
            await reading.wait()
            old = running.manager.get_runner(bot.client_id)
            assert old is not None
            async with balancer._lock:  # no round until the reload has ended
                await leases.update_one(
                    {"_id": bot.client_id}, {"$set": {"owner": "elsewhere:1:0"}, "$inc": {"epoch": 1}}
                )
                await old.wait_for_state(BotState.STOPPED, timeout=WAIT)  # the stream saw it
                release.set()  # the reload ends with what it read before the change
                await reloaded.wait()
        await until(lambda: (epoch(running, bot) or 0) >= first + 2, what="the bot to be claimed again")
        await running.wait_for(bot, BotState.READY)
    assert bot.max_concurrent_sessions == 1


async def test_a_reaped_worker_stops_its_bots_and_registers_again(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    settings = _short_lease_settings(make_settings, fake_discord)
    bot = fake_discord.add_bot()
    await store_bot(mongo, settings, bot)
    database = mongo[settings.mongodb_database]
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.READY)
        fleet = running.manager.fleet
        old_id = fleet.me
        # What another worker does once it observed this one silent for LEASE_TTL.
        await database[WorkerRecord.Settings.name].delete_one({"_id": old_id})
        await database[BotLease.Settings.name].update_many({"owner": old_id}, {"$set": {"owner": None}})
        await until(lambda: fleet.me != old_id, what="a new registration")

        def ready_again() -> bool:
            runner = running.manager.get_runner(bot.client_id)
            return runner is not None and runner.state is BotState.READY and fleet.holds(bot.client_id)

        await until(ready_again, what="the bot to run again under the new registration")
        assert bot.identify_count >= 2
        ids = [doc["_id"] async for doc in database[WorkerRecord.Settings.name].find({})]
        assert ids == [fleet.me]
    assert bot.max_concurrent_sessions == 1


async def test_a_claim_whose_answer_was_lost_is_taken_up(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    """The claim landed but its reply did not: the lease names this worker, which does not know
    it holds it. The next round asks the database and runs the bot under that epoch."""
    settings = fleet_settings.model_copy(update={"worker_capacity": 1})  # it claims only one itself
    steady, lost = fake_discord.add_bot(), fake_discord.add_bot()
    await store_bot(mongo, settings, steady)
    await store_bot(mongo, settings, lost)
    leases = mongo[settings.mongodb_database][BotLease.Settings.name]
    async with running_app(settings) as running:
        manager = running.manager
        await until(lambda: len(manager.runners) == 1, what="one bot claimed")
        (runner,) = manager.runners
        other = lost if runner.client_id == steady.client_id else steady
        assert manager.get_runner(other.client_id) is None  # at capacity: its lease stays free
        await leases.update_one(
            {"_id": other.client_id, "owner": None}, {"$set": {"owner": manager.fleet.me, "epoch": 7}}
        )
        await until(lambda: epoch(running, other) == 7, what="the bot to run under the lost claim")
        await running.wait_for(other, BotState.READY)


async def test_a_drain_out_of_time_closes_the_rest_and_keeps_their_leases(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, monkeypatch: Any
) -> None:
    """SIGTERM with no time left for graceful hand-overs (the deadline already passed): every
    bot's session is still closed before the process goes, but no lease is released and the
    worker stays registered, so the others take the bots after LEASE_TTL, as after a crash."""
    monkeypatch.setattr(coordinator, "DRAIN_HAND_OVER_SECONDS", 0.0)
    bots = [fake_discord.add_bot(name=f"Late {n}") for n in range(3)]
    for bot in bots:
        await store_bot(mongo, fleet_settings, bot)
    database = mongo[fleet_settings.mongodb_database]
    async with running_app(fleet_settings) as running:
        for bot in bots:
            await running.wait_for(bot, BotState.READY)
        me = running.manager.fleet.me
    assert not any(fake_discord.is_connected(bot) for bot in bots)
    owners = {doc["_id"]: doc["owner"] async for doc in database[BotLease.Settings.name].find({})}
    assert owners == {bot.client_id: me for bot in bots}
    assert await database[WorkerRecord.Settings.name].count_documents({"_id": me}) == 1
    assert all(bot.max_concurrent_sessions == 1 for bot in bots)


async def test_a_reap_that_misses_frees_nothing(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo, monkeypatch: Any
) -> None:
    """This worker observed another's counter stand still for LEASE_TTL, but that worker's
    heartbeat lands just before the reap: the reap misses, so that worker is alive and its leases
    stay its own (freeing them would let this worker start a bot the other still runs). Once it
    really stays silent, it is reaped and its bot taken over here."""
    settings = _short_lease_settings(make_settings, fake_discord)
    bot = fake_discord.add_bot()
    await store_bot(mongo, settings, bot)
    database = mongo[settings.mongodb_database]
    workers = database[WorkerRecord.Settings.name]
    leases = database[BotLease.Settings.name]
    other = "elsewhere:1:0"
    await workers.insert_one({"_id": other, "address": "http://127.0.0.1:9", "host": "elsewhere", "pid": 1,
                              "heartbeat": 0, "state": "active", "bots": 1})  # fmt: skip
    await leases.insert_one({"_id": bot.client_id, "owner": other, "epoch": 1, "restarts": 0})
    owners_seen_at_reap: list[str | None] = []
    real_reap = lease_db.reap_worker

    async def reap(worker_id: str, *, heartbeat: int) -> bool:
        lease = await leases.find_one({"_id": bot.client_id})
        assert lease is not None
        owners_seen_at_reap.append(lease["owner"])
        if len(owners_seen_at_reap) == 1:  # its heartbeat lands between our read and our reap
            await workers.update_one({"_id": worker_id}, {"$inc": {"heartbeat": 1}})
        return await real_reap(worker_id, heartbeat=heartbeat)

    monkeypatch.setattr(lease_db, "reap_worker", reap)
    async with running_app(settings) as running:
        await until(lambda: running.manager.get_runner(bot.client_id) is not None, what="the takeover")
        await running.wait_for(bot, BotState.READY)
        assert owners_seen_at_reap[:2] == [other, other]  # the missed reap freed nothing
        assert epoch(running, bot) == 2
    assert bot.max_concurrent_sessions == 1


async def test_leases_are_counted_held_and_unowned_for_metrics(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo
) -> None:
    """`chorus_leases{state}`: a worker at its WORKER_CAPACITY leaves the second bot unowned, which
    is what the ChorusBotNoLiveOwner alert reads; bot ids never become labels."""
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        worker_capacity=1,
    )
    bots = [fake_discord.add_bot(), fake_discord.add_bot()]
    for bot in bots:
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        fleet = running.manager.fleet
        await until(lambda: fleet.lease_states()["held"] == 1, what="one bot held")
        assert fleet.lease_states() == {"held": 1, "expired": 0, "unowned": 1}
        text = (await running.http.get("/metrics")).text
        lines = [line for line in text.splitlines() if line.startswith("chorus_leases{")]
        assert sorted(lines) == [
            'chorus_leases{state="expired"} 0.0',
            'chorus_leases{state="held"} 1.0',
            'chorus_leases{state="unowned"} 1.0',
        ]


async def test_a_dead_workers_leases_are_all_claimed_in_the_round_that_reaps_it(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo, monkeypatch: Any
) -> None:
    """A takeover does not wait for the change stream to echo every freed lease: the round that
    reaps a dead worker frees its leases in the mirror too and claims them all in one claim.
    The echo is withheld here (and no reload asked for), as on a database slow to deliver it:
    before, nothing could be claimed until the echo or the periodic reload came."""
    settings = _short_lease_settings(make_settings, fake_discord)
    bots = [fake_discord.add_bot(name=f"Orphan {n}") for n in range(6)]
    ids = {bot.client_id for bot in bots}
    for bot in bots:
        await store_bot(mongo, settings, bot)
    database = mongo[settings.mongodb_database]
    dead = "elsewhere:1:0"
    worker = {"_id": dead, "address": "http://127.0.0.1:9", "host": "elsewhere", "pid": 1, "heartbeat": 0,
              "state": "active", "bots": len(bots)}  # fmt: skip
    await database[WorkerRecord.Settings.name].insert_one(worker)
    await database[BotLease.Settings.name].insert_many(
        [{"_id": client_id, "owner": dead, "epoch": 1, "restarts": 0} for client_id in ids]
    )
    rounds: dict[str, list[int]] = {"reap": [], "claim": []}
    running_fleet: list[coordinator.FleetCoordinator] = []
    real_reap, real_claim = lease_db.reap_worker, lease_db.claim_free

    def current_round() -> int:
        return running_fleet[0].balancer.rounds

    async def reap(worker_id: str, *, heartbeat: int) -> bool:
        reaped = await real_reap(worker_id, heartbeat=heartbeat)
        if reaped and worker_id == dead:
            rounds["reap"].append(current_round())
        return reaped

    async def claim(worker_id: str, client_ids: Any) -> Any:
        if set(client_ids) & ids:
            rounds["claim"].append(current_round())
        return await real_claim(worker_id, client_ids)

    real_apply = FleetView._apply_lease  # pyright: ignore[reportPrivateUsage]  # withholding the echo

    def apply_late(view: FleetView, change: dict[str, Any]) -> None:
        document = change.get("fullDocument") or {}
        if change.get("documentKey", {}).get("_id") in ids and document.get("owner") is None:
            return  # the stream's echo of the freeing, withheld
        real_apply(view, change)

    monkeypatch.setattr(lease_db, "reap_worker", reap)
    monkeypatch.setattr(lease_db, "claim_free", claim)
    monkeypatch.setattr(FleetView, "_apply_lease", apply_late)
    monkeypatch.setattr(FleetView, "needs_reload", lambda view: None)
    async with running_app(settings) as running:
        fleet = running.manager.fleet
        running_fleet.append(fleet)
        await until(lambda: bool(rounds["reap"]), what="the dead worker to be reaped")
        await until(lambda: all(fleet.holds(client_id) for client_id in ids), what="every lease claimed")
        assert rounds["claim"] == rounds["reap"], "claimed in a later round than the reap"
        manager = running.manager
        await until(lambda: all(manager.get_runner(client_id) for client_id in ids), what="every bot started")
        for bot in bots:
            await running.wait_for(bot, BotState.READY)
    assert all(bot.max_concurrent_sessions == 1 for bot in bots)


async def test_a_silent_worker_is_read_again_when_its_silence_reaches_lease_ttl(
    fake_discord: FakeDiscord, make_settings: Any, mongo: Mongo, monkeypatch: Any
) -> None:
    """The mirror reads the workers once more at the moment a silence reaches LEASE_TTL, not only
    after this worker's own heartbeats (up to an interval later). Here the reads after the
    heartbeats are switched off: the dead worker is still proven dead, reaped and taken over."""
    settings = _short_lease_settings(make_settings, fake_discord)
    bot = fake_discord.add_bot()
    await store_bot(mongo, settings, bot)
    database = mongo[settings.mongodb_database]
    dead = "elsewhere:1:0"
    worker = {"_id": dead, "address": "http://127.0.0.1:9", "host": "elsewhere", "pid": 1, "heartbeat": 0,
              "state": "active", "bots": 1}  # fmt: skip
    await database[WorkerRecord.Settings.name].insert_one(worker)
    await database[BotLease.Settings.name].insert_one({"_id": bot.client_id, "owner": dead, "epoch": 1})

    async def no_read_after_beats(self: coordinator.FleetCoordinator) -> None:
        return None

    monkeypatch.setattr(coordinator.FleetCoordinator, "_after_beat", no_read_after_beats)
    async with running_app(settings) as running:
        await until(lambda: running.manager.get_runner(bot.client_id) is not None, what="the takeover")
        await running.wait_for(bot, BotState.READY)
        assert epoch(running, bot) == 2
        assert await database[WorkerRecord.Settings.name].find_one({"_id": dead}) is None
    assert bot.max_concurrent_sessions == 1


def _short_lease_settings(make_settings: Any, fake_discord: FakeDiscord) -> Settings:
    """Settings on the fake Discord with LEASE_TTL 3 s (a heartbeat every 0.6 s)."""
    return make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        lease_ttl=3.0,
    )


async def test_a_settled_fleet_balances_on_events_not_by_the_clock(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, monkeypatch: Any
) -> None:
    """A round is O(bots). Once one finds the fleet settled, the fallback round waits
    SETTLED_FALLBACK intervals (here an hour, so only an event can start anything); a bot added,
    then deleted, is still claimed and started, then stopped and its lease removed, at once."""
    monkeypatch.setattr(balancer_module, "SETTLED_FALLBACK", 1200)
    first = fake_discord.add_bot(name="Settled 1")
    await store_bot(mongo, fleet_settings, first)
    database = mongo[fleet_settings.mongodb_database]
    leases = database[BotLease.Settings.name]
    async with running_app(fleet_settings) as running:
        await running.wait_for(first, BotState.READY)
        fleet = running.manager.fleet
        await until(lambda: fleet.balancer.settled, what="a round to find the fleet settled")
        assert fleet.balancer.fallback_delay >= 3600
        rounds = fleet.balancer.rounds

        second = fake_discord.add_bot(name="Settled 2")
        await store_bot(mongo, fleet_settings, second)
        await until(
            lambda: running.manager.get_runner(second.client_id) is not None, what="the new bot claimed"
        )
        await running.wait_for(second, BotState.READY)
        assert fleet.balancer.rounds > rounds

        await database[MusicBot.Settings.name].delete_one({"client_id": second.client_id})
        await until(lambda: running.manager.get_runner(second.client_id) is None, what="the bot stopped")

        async def lease_removed() -> bool:
            return await leases.count_documents({"_id": second.client_id}) == 0

        await until(lease_removed, what="its lease removed")
        await until(lambda: fleet.balancer.settled, what="the fleet settled again")
