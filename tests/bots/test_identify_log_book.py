"""The IDENTIFY logs of a worker's bots are written and read in batches: one bulk write for the
IDENTIFYs of a window, one query for the logs asked for, whatever the number of bots; the budget
is decided from memory, and a restart reads what the previous process wrote."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from app.bots.backoff import Backoff
from app.bots.errors import IdentifyBudgetExceeded
from app.bots.identify import IdentifyLedger, IdentifyLogBook
from app.db import queries
from app.db.models import utcnow

pytestmark = pytest.mark.usefixtures("mongo")
WAIT = 30.0


async def test_a_hundred_bots_identifying_together_cost_one_write_and_one_read() -> None:
    earlier = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    await queries.record_identifies_of_bots({client_id: [earlier] for client_id in range(1, 101, 2)})
    book = IdentifyLogBook(window=0.2)
    ledgers = [IdentifyLedger(client_id, budget_share=0.5, book=book) for client_id in range(1, 101)]
    try:
        # Each ledger reads its log (batched), then writes its IDENTIFY (batched) before it returns.
        await asyncio.gather(*(ledger.claim() for ledger in ledgers))
        assert book.writes == 1
        assert [ledger.count() for ledger in ledgers] == [2 if n % 2 else 1 for n in range(1, 101)]
        logs = await queries.identify_logs(range(1, 101))
        assert all(len(log) == (2 if n % 2 else 1) for n, log in logs.items())  # written before sent
        # A restart (a new book, the logs read for the fleet): nothing is forgotten.
        again = IdentifyLedger(1, budget_share=0.5, book=IdentifyLogBook(), log=logs[1])
        assert again.count() == 2
    finally:
        await book.close(timeout=5)


async def test_the_budget_is_decided_from_the_log_read_at_start() -> None:
    now = utcnow().replace(microsecond=0)
    book = IdentifyLogBook(window=0.05)
    budget_share = 0.003  # a budget of 3
    ledger = IdentifyLedger(
        7, budget_share=budget_share, book=book, log=[now - timedelta(minutes=m) for m in (1, 2)]
    )
    try:
        await ledger.claim()  # the third fits
        with pytest.raises(IdentifyBudgetExceeded):
            await ledger.claim()
        assert len((await queries.identify_logs([7]))[7]) == 1  # only what was allowed was written
    finally:
        await book.close(timeout=5)


async def test_a_hand_over_of_many_bots_waits_once_for_their_logs() -> None:
    """`all_written`: the IDENTIFYs of every bot of a released batch in their logs, one write and
    one wait for all of them; bots with nothing queued cost nothing."""
    now = utcnow().replace(microsecond=0)
    book = IdentifyLogBook(window=0.05)
    try:
        for client_id in range(1, 51):
            book._queued[client_id] = [now]  # pyright: ignore[reportPrivateUsage]  # IDENTIFYs queued, as `record` leaves them
        assert await book.all_written([*range(1, 51), 999]) == []
        assert book.writes == 1
        logs = await queries.identify_logs(range(1, 51))
        assert all(len(log) == 1 for log in logs.values()) and len(logs) == 50
        assert await book.all_written(range(1, 51)) == []  # nothing left: no wait, no write
        assert book.writes == 1
    finally:
        await book.close(timeout=5)


async def test_a_hand_over_waiting_for_the_logs_cuts_the_writers_backoff_short(monkeypatch: Any) -> None:
    """After failed writes (a database swamped by a large start) the writer backs off, up to 30 s;
    a hand-over waiting for its bots' records makes it try again at once, instead of waiting out
    its bound, once per released batch, for a write that was never going to be attempted."""
    now = utcnow().replace(microsecond=0)
    record = queries.record_identifies_of_bots
    failures: list[int] = []

    async def failing(batch: Any) -> None:
        failures.append(len(batch))
        raise AutoReconnect("the pool is exhausted")

    monkeypatch.setattr(queries, "record_identifies_of_bots", failing)
    book = IdentifyLogBook(window=0.01, wait=WAIT)
    book._backoff = Backoff(initial=3600.0, maximum=3600.0)  # pyright: ignore[reportPrivateUsage]  # a long backoff
    try:
        assert not await asyncio.wait_for(book.record(5, now), WAIT)  # its write failed
        assert failures == [1]
        monkeypatch.setattr(queries, "record_identifies_of_bots", record)  # the database is back
        assert await book.all_written([5]) == []
        assert len((await queries.identify_logs([5]))[5]) == 1
    finally:
        await book.close(timeout=5)
