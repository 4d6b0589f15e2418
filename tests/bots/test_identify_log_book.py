"""The IDENTIFY logs of a worker's bots are written and read in batches: one bulk write for the
IDENTIFYs of a window, one query for the logs asked for, whatever the number of bots; the budget
is decided from memory, and a restart reads what the previous process wrote."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.bots.errors import IdentifyBudgetExceeded
from app.bots.identify import IdentifyLedger, IdentifyLogBook
from app.db import queries
from app.db.models import utcnow

pytestmark = pytest.mark.usefixtures("mongo")


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
