"""A hand-over of many bots (a SIGTERMed worker's drain): the bots stop a bounded number at a time,
and nothing else waits inside those slots. The wait for the bots' IDENTIFYs to be in their logs
(bounded, up to seconds while the database is slow) is made once per released batch: made inside
each bot's slot, 1,000 bots paid it in 16 rounds one after the other, and a SIGTERMed worker took
longer than its supervisor's patience to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.fleet.leases import HAND_OVER_CONCURRENCY, Held, LeaseBook
from app.db.models import BotLease
from app.settings import Settings
from tests.bots.fleet.workers import until

WAIT = 30.0
WORKER = "worker-1"


class Host:
    """The part of `BotHost` a hand-over uses. Every bot's IDENTIFY log write is pending until
    the test lets it through (a slow database)."""

    def __init__(self) -> None:
        self.stopped: list[int] = []
        self.logs_written = asyncio.Event()
        self.waits: list[list[int]] = []

    async def hand_over(self, client_id: int) -> bool:
        await asyncio.sleep(0)
        self.stopped.append(client_id)
        return True

    async def identifies_written(self, client_ids: Collection[int]) -> None:
        self.waits.append(list(client_ids))
        await self.logs_written.wait()


async def test_a_slow_identify_log_holds_no_hand_over_slot(
    make_settings: Any, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    settings: Settings = make_settings()
    leases = mongo[settings.mongodb_database][BotLease.Settings.name]
    bots = list(range(1, HAND_OVER_CONCURRENCY * 3 + 1))
    await leases.insert_many([{"_id": bot, "owner": WORKER, "epoch": 1} for bot in bots])
    book = LeaseBook(lambda: WORKER)
    book.held = {bot: Held(epoch=1, restarts=0) for bot in bots}
    host = Host()

    hand_over = asyncio.create_task(
        book.hand_over(host, bots, write_timeout=WAIT, collection=leases)  # type: ignore[arg-type]  # a partial host
    )
    # Every bot stops while the first batch still waits for the IDENTIFY log: no slot is held
    # by that wait (before, only the first HAND_OVER_CONCURRENCY bots ever got this far).
    await until(lambda: len(host.stopped) == len(bots), what="every bot to stop")
    assert not hand_over.done()
    assert await leases.count_documents({"owner": None}) == 0  # nothing released before the log

    host.logs_written.set()
    released = await asyncio.wait_for(hand_over, WAIT)
    assert released == set(bots)
    assert await leases.count_documents({"owner": None}) == len(bots)
    # One wait per released batch, each for many bots: not one per bot.
    assert sorted(bot for batch in host.waits for bot in batch) == bots
    assert len(host.waits) < len(bots) / 10
