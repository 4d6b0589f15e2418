"""Voice assignments and forwarded requests against a real server: the unique indexes decide."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.db import routing
from app.db.models import RequestStatus, VoiceAssignment

Mongo = AsyncMongoClient[dict[str, Any]]
pytestmark = pytest.mark.usefixtures("mongo")

GUILD, OTHER_GUILD = 100, 200
ROOM_1, ROOM_2 = 11, 12


async def test_a_channel_has_one_bot_and_a_bot_one_channel_per_guild() -> None:
    assert await routing.take_voice(GUILD, ROOM_1, 1, worker="w1", epoch=1) == 1
    # Another bot for the same channel: the unique (guild, channel) index names the holder.
    assert await routing.take_voice(GUILD, ROOM_1, 2, worker="w2", epoch=1) == 1
    assert await routing.take_voice(GUILD, ROOM_2, 2, worker="w2", epoch=1) == 2
    # The same bot again in another channel of the guild moves its one row.
    assert await routing.take_voice(GUILD, ROOM_1, 1, worker="w1", epoch=1) == 1
    assert await routing.take_voice(OTHER_GUILD, ROOM_1, 1, worker="w1", epoch=1) == 1
    rows = {(a.guild_id, a.channel_id): a.bot_id for a in await routing.all_voice()}
    assert rows == {(GUILD, ROOM_1): 1, (GUILD, ROOM_2): 2, (OTHER_GUILD, ROOM_1): 1}
    (row,) = [a for a in await routing.voice_in_guild(GUILD) if a.bot_id == 1]
    assert row.worker == "w1" and row.epoch == 1 and row.since is not None


async def test_many_bots_racing_for_one_channel_end_with_one(mongodb_url: str, database_name: str) -> None:
    """Ten bots on ten connection pools (ten workers) take one channel at the same moment."""
    from app.db.connection import make_client

    clients = [make_client(mongodb_url) for _ in range(10)]
    collection_name = VoiceAssignment.Settings.name
    try:
        for client in clients:
            await client.admin.command("ping")

        async def contend(bot: int) -> bool:
            own = clients[bot][database_name][collection_name]
            try:
                await own.update_one(
                    {"guild_id": GUILD, "bot_id": bot},
                    {"$set": {"channel_id": ROOM_1, "epoch": 1}},
                    upsert=True,
                )
            except Exception:
                return False
            return True

        won = await asyncio.gather(*(contend(bot) for bot in range(10)))
    finally:
        for client in clients:
            await client.close()
    assert sum(won) == 1, won
    (row,) = await routing.voice_in_guild(GUILD)
    assert won[row.bot_id]


async def test_release_is_fenced_by_epoch_and_by_channel() -> None:
    await routing.take_voice(GUILD, ROOM_1, 1, worker="w1", epoch=3)
    assert not await routing.release_voice(GUILD, 1, epoch=2)  # an older owner
    assert not await routing.release_voice(GUILD, 1, epoch=3, channel_id=ROOM_2)  # not that channel
    assert await routing.release_voice(GUILD, 1, epoch=3)
    assert await routing.voice_in_guild(GUILD) == []
    assert not await routing.release_voice(GUILD, 1, epoch=3)  # already gone


async def test_an_older_epoch_cannot_take_over_a_newer_owners_row() -> None:
    await routing.take_voice(GUILD, ROOM_1, 1, worker="new", epoch=5)
    with pytest.raises(routing.AssignmentFenced):
        await routing.take_voice(GUILD, ROOM_2, 1, worker="stale", epoch=4)
    (row,) = await routing.voice_in_guild(GUILD)
    assert (row.channel_id, row.worker, row.epoch) == (ROOM_1, "new", 5)


async def test_the_new_owner_cleans_up_rows_an_older_epoch_left() -> None:
    await routing.take_voice(GUILD, ROOM_1, 1, worker="old", epoch=1)
    await routing.take_voice(OTHER_GUILD, ROOM_1, 1, worker="old", epoch=1)
    await routing.take_voice(GUILD, ROOM_2, 2, worker="old", epoch=1)  # another bot: untouched
    # The new owner (epoch 2) restored the player of GUILD only: it re-took that row.
    await routing.take_voice(GUILD, ROOM_1, 1, worker="new", epoch=2)
    assert await routing.clean_voice(1, epoch=2) == 1
    rows = {(a.guild_id, a.bot_id): (a.channel_id, a.epoch) for a in await routing.all_voice()}
    assert rows == {(GUILD, 1): (ROOM_1, 2), (GUILD, 2): (ROOM_2, 1)}
    assert await routing.forget_voice(2) == 1


async def test_a_request_is_either_taken_or_cancelled_never_both() -> None:
    payload = {"id": "1", "token": "t", "type": 2}
    first = await routing.submit_request(target_bot=1, target_worker="w2", payload=payload)
    assert [r.target_bot for r in await routing.pending_requests("w2")] == [1]
    assert await routing.claim_request(first, worker="w1") is None  # not its worker
    taken = await routing.claim_request(first, worker="w2")
    assert taken is not None and taken.payload == payload and taken.status is RequestStatus.TAKEN
    assert not await routing.cancel_request(first)  # too late: the owner answers
    second = await routing.submit_request(target_bot=1, target_worker="w2", payload=payload)
    assert await routing.cancel_request(second)
    assert await routing.claim_request(second, worker="w2") is None  # too late: the receiver answered
    assert await routing.pending_requests("w2") == []


async def test_requests_expire_with_the_interaction_token(mongo: Mongo, database_name: str) -> None:
    indexes = await mongo[database_name]["fleet_requests"].index_information()
    ttl = [spec for spec in indexes.values() if "expireAfterSeconds" in spec]
    assert [(spec["key"], spec["expireAfterSeconds"]) for spec in ttl] == [([("created", 1)], 900)]
