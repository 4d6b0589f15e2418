"""The fleet's atomic operations against a real server: one winner per race, CAS everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.db import leases, queries
from app.db.models import BotLease, LeaseStatus, ServerMusicBot, ServerStatus, utcnow
from tests.db.test_queries import make_bot

Mongo = AsyncMongoClient[dict[str, Any]]
pytestmark = pytest.mark.usefixtures("mongo")


async def test_workers_racing_for_one_lease_end_with_exactly_one_owner(
    mongo: Mongo, mongodb_url: str, database_name: str
) -> None:
    """Twenty workers, each on its own connection pool (as separate processes would be), claim
    the same free leases at the same moment: every lease has exactly one owner, which is the
    one worker that was told it won, with epoch 1."""
    from app.db.connection import make_client

    bots = list(range(1, 11))
    await leases.ensure_leases(bots)
    clients = [make_client(mongodb_url) for _ in range(20)]
    try:
        for client in clients:
            await client.admin.command("ping")
        collection = BotLease.get_pymongo_collection()

        async def contend(index: int) -> set[int]:
            # A worker's claim, but through its own client: the race happens in the server.
            own = clients[index][database_name][collection.name]
            worker = f"host:{index}:race"
            await own.update_many(
                {"_id": {"$in": bots}, "owner": None},
                {"$set": {"owner": worker}, "$inc": {"epoch": 1}, "$currentDate": {"acquired_at": True}},
            )
            return {doc["_id"] async for doc in own.find({"_id": {"$in": bots}, "owner": worker})}

        won = await asyncio.gather(*(contend(i) for i in range(20)))
    finally:
        for client in clients:
            await client.close()
    winners: dict[int, list[int]] = {bot: [i for i, got in enumerate(won) if bot in got] for bot in bots}
    assert all(len(who) == 1 for who in winners.values()), winners
    for bot in bots:
        lease = await leases.get_lease(bot)
        assert lease is not None and lease.owner == f"host:{winners[bot][0]}:race" and lease.epoch == 1


async def test_claim_free_returns_only_what_this_worker_won() -> None:
    await leases.ensure_leases([1, 2, 3])
    assert await leases.ensure_leases([1, 2, 3, 4]) == 1  # only the missing one is created
    first = await leases.claim_free("a", [1, 2])
    assert {k: v.epoch for k, v in first.items()} == {1: 1, 2: 1}
    second = await leases.claim_free("b", [2, 3])  # 2 is a's
    assert set(second) == {3}
    assert await leases.claim_free("c", []) == {}


async def test_release_and_delete_are_compare_and_set_on_owner_and_epoch() -> None:
    await leases.ensure_leases([1])
    (held,) = (await leases.claim_free("a", [1])).values()
    assert not await leases.release(1, worker_id="b", epoch=held.epoch)  # not b's
    assert not await leases.release(1, worker_id="a", epoch=held.epoch + 1)  # not that epoch
    assert await leases.release(1, worker_id="a", epoch=held.epoch)
    again = await leases.claim_free("b", [1])
    assert again[1].epoch == held.epoch + 1  # every claim is a new epoch
    assert not await leases.delete_lease(1, worker_id=None)  # owned: only its owner deletes it
    assert await leases.delete_lease(1, worker_id="b", epoch=again[1].epoch)
    assert await leases.get_lease(1) is None


async def test_a_reap_misses_when_the_worker_heartbeats_meanwhile() -> None:
    await leases.register_worker("dead:1:x", address="http://a", host="a", pid=1, capacity=None)
    await leases.register_worker("slow:2:y", address="http://b", host="b", pid=2, capacity=3)
    assert await leases.heartbeat("slow:2:y", bots=0, lavalink=(0, 0))  # its counter is now 1
    assert not await leases.reap_worker("slow:2:y", heartbeat=0)  # what the observer saw: stale
    assert await leases.reap_worker("dead:1:x", heartbeat=0)
    assert not await leases.heartbeat("dead:1:x", bots=0, lavalink=(0, 0))  # it learns it was reaped
    workers = {w.id: w for w in await leases.all_workers()}
    assert set(workers) == {"slow:2:y"} and workers["slow:2:y"].capacity == 3
    assert workers["slow:2:y"].started_at is not None  # the server's time


async def test_orphans_are_freed_and_statuses_are_fenced() -> None:
    await leases.ensure_leases([1, 2])
    await leases.claim_free("gone", [1, 2])
    status = LeaseStatus(state="ready", since=utcnow(), guilds=3)
    written, fenced = await leases.publish_statuses("gone", [(1, 1, status), (2, 7, status)])
    assert (written, fenced) == (1, 1)  # epoch 7 is not the lease's
    assert await leases.release_orphans("gone") == 2
    lease = await leases.get_lease(1)
    assert lease is not None and lease.owner is None and lease.status is None and lease.epoch == 1
    assert await leases.request_restart(1) and not await leases.request_restart(99)


async def test_a_stale_owner_cannot_overwrite_guild_records_of_a_newer_epoch() -> None:
    bot = await make_bot(1)
    assert bot.id is not None
    assert await queries.activate_bot_in_guild(bot.id, 10, epoch=5)
    # An owner of epoch 4 (it lost the bot) sees the guild gone: its removal is fenced.
    assert await queries.reconcile_bot_guilds(bot.id, [], epoch=4) == (0, 0)
    assert not await queries.mark_bot_failed_in_guild(bot.id, 10, reason="no Connect", epoch=4)
    record = await ServerMusicBot.find_one(ServerMusicBot.server_id == 10)
    assert record is not None and record.status is ServerStatus.ACTIVE and record.epoch == 5
    # The owner of epoch 5 (or a newer one) may.
    assert await queries.reconcile_bot_guilds(bot.id, [], epoch=6) == (0, 1)
