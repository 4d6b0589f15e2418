"""A worker's guild syncs share a bound on the writes they have in flight.

A fresh fleet's first start syncs every bot at once; unbounded, 1,000 bots took every pooled
connection for seconds and the worker reported its database unreachable while it was only busy.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from beanie import PydanticObjectId

from app.bots.client import MusicBotClient
from app.bots.guild_sync import GuildSync
from app.db import queries
from app.db.models import MusicBot

BOTS = 12
AT_ONCE = 3


def _client(guild_id: int) -> MusicBotClient:
    permissions = SimpleNamespace(connect=True, speak=True)
    guild = SimpleNamespace(id=guild_id, unavailable=False, me=SimpleNamespace(guild_permissions=permissions))
    return cast(MusicBotClient, SimpleNamespace(guilds=[guild], user_count=5))


async def test_guild_syncs_of_many_bots_never_have_more_writes_in_flight_than_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_flight = peak = 0
    written: dict[str, list[Any]] = {"guilds": [], "counts": []}
    release = asyncio.Event()

    async def write(kind: str, key: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await release.wait()  # held until every bot asked: the bound is what lets them in
        finally:
            in_flight -= 1
        written[kind].append(key)

    async def reconcile(music_bot_id: PydanticObjectId, guild_ids: Any, **_: Any) -> tuple[int, int]:
        await write("guilds", music_bot_id)
        return len(guild_ids), 0

    async def count(client_id: int, *, guild_count: int, user_count: int) -> None:
        await write("counts", (client_id, guild_count, user_count))

    monkeypatch.setattr(queries, "reconcile_bot_guilds", reconcile)
    monkeypatch.setattr(queries, "update_bot_guild_count", count)
    writers = asyncio.Semaphore(AT_ONCE)
    syncs = []
    for n in range(BOTS):
        record = MusicBot.model_construct(
            id=PydanticObjectId(), client_id=1000 + n, guild_count=0, user_count=0
        )
        client = _client(5000 + n)
        sync = GuildSync(
            client_id=1000 + n, record=lambda r=record: r, ready_client=lambda c=client: c, writers=writers
        )
        syncs.append(sync)
        sync.start()
        sync.wake()
    try:
        async with asyncio.timeout(30):
            while in_flight < AT_ONCE:  # the first ones are in; the others wait for a slot
                await asyncio.sleep(0.01)
            for _ in range(20):  # let every loop run: none gets past the bound
                await asyncio.sleep(0)
            assert in_flight == AT_ONCE
            release.set()
            while min(sync.passes for sync in syncs) < 1:
                await asyncio.sleep(0.01)
    finally:
        for sync in syncs:
            assert sync.task is not None
            sync.task.cancel()
        await asyncio.gather(*(sync.task for sync in syncs if sync.task is not None), return_exceptions=True)
    assert peak == AT_ONCE
    assert len(written["guilds"]) == BOTS
    assert sorted(written["counts"]) == [(1000 + n, 1, 5) for n in range(BOTS)]
