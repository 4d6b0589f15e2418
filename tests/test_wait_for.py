"""A task cancelled while it waits is cancelled, even when what it waited for completes at the
same moment (app.wait_for: Python 3.11's `asyncio.wait_for` lost such a cancellation, and PyMongo
waits with it on every socket write)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from datetime import timedelta
from typing import Any

import pymongo.lock
import pytest
from pymongo import AsyncMongoClient

from app import wait_for
from app.bots.router import FleetRouter
from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot


async def test_a_cancel_that_arrives_with_the_result_is_kept() -> None:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiting() -> int:
        return await asyncio.wait_for(done, 10)

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)  # the task now waits in wait_for
    done.set_result(1)  # the result and the cancellation land in the same loop iteration
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # on 3.11's own wait_for: returned 1, and the task went on as if never cancelled


async def test_it_still_times_out_and_returns_results() -> None:
    gate = asyncio.Event()
    inner = asyncio.create_task(gate.wait())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(inner, 0.01)
    assert inner.cancelled()  # the work is cancelled at the timeout, as before
    assert await asyncio.wait_for(asyncio.sleep(0, result="now"), None) == "now"
    assert await asyncio.wait_for(asyncio.sleep(0, result="soon"), 30) == "soon"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(10), 0)  # no time at all
    finished: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    finished.set_result("there")
    assert await asyncio.wait_for(finished, 0) == "there"


def test_it_is_in_place_wherever_the_function_was_imported() -> None:
    if not wait_for.NEEDED:
        assert wait_for.install() is False  # nothing to mend on 3.12+
        return
    assert wait_for.install() is True  # idempotent (the conftest installed it)
    assert asyncio.wait_for is wait_for.wait_for
    assert vars(pymongo.lock)["wait_for"] is wait_for.wait_for  # PyMongo imported it by name


async def test_database_reads_cancelled_at_any_moment_all_stop(
    mongo: AsyncMongoClient[dict[str, Any]], database_name: str
) -> None:
    """What the fleet's background loops do: a read, a sleep, again; cancelled at a random moment
    of the read. On 3.11 without the mend about one in fifteen went on to its sleep instead."""
    collection = mongo[database_name]["reads"]
    await collection.insert_one({"n": 1})
    rng = random.Random(86296)

    async def loop() -> None:
        while True:
            await collection.find_one({"n": 1}, {"_id": 1})
            await asyncio.sleep(60)

    for attempt in range(300):
        task = asyncio.create_task(loop())
        await asyncio.sleep(rng.random() * 0.003)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)  # a cancelled read ends at once
        if not done:
            task.cancel()  # the read was over: the sleep is cancelled this time
            await asyncio.wait({task}, timeout=20)
            pytest.fail(f"cancelled read {attempt + 1} kept running (Python {sys.version.split()[0]})")


async def test_a_loop_that_will_not_stop_does_not_hold_the_shutdown(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: AsyncMongoClient[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever swallows a cancellation (3.11's wait_for did), the background loops' stops are
    bounded: the invite sweeper here keeps running when cancelled; the shutdown gives up on it
    (logged) and goes on to stop the bots. It used to wait for it forever."""
    sweeping, released = asyncio.Event(), asyncio.Event()

    async def stubborn(self: FleetRouter, older_than: timedelta) -> int:
        sweeping.set()
        while not released.is_set():  # every cancellation swallowed, until the test lets it go
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()
        return 0

    monkeypatch.setattr(FleetRouter, "expire_invites", stubborn)
    bot = fake_discord.add_bot(name="Stopped anyway")
    await store_bot(mongo, fleet_settings, bot)
    async with asyncio.timeout(90):
        async with running_app(fleet_settings) as running:
            await running.wait_for(bot, BotState.READY)
            await asyncio.wait_for(sweeping.wait(), 30)
            runner = running.manager.get_runner(bot.client_id)
            assert runner is not None
    released.set()
    assert runner.state is BotState.STOPPED
    assert "The invite sweeper: 1 task(s) did not stop within 2s; abandoned" in caplog.text
