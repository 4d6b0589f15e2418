"""Gateway heartbeats run on the event loop (no thread per connection), and latencyMs is honest:
an ACK with no heartbeat outstanding (duplicate, early) changes nothing."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import discord.gateway
import pytest
from pymongo import AsyncMongoClient

from app.bots.heartbeat import HonestKeepAlive, beating_handlers
from app.bots.identify import IdentifyLedger
from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot


async def test_a_stray_ack_does_not_become_latency(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bot = fake_discord.add_bot(name="Heartbeat")
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.client is not None and runner.client.ws is not None
        assert discord.gateway.KeepAliveHandler is HonestKeepAlive  # the seam is in place
        keep_alive = runner.client.ws._keep_alive  # pyright: ignore[reportPrivateUsage]  # what the seam installs
        assert isinstance(keep_alive, HonestKeepAlive)

        # The first heartbeat (sent on HELLO; the next is 30 s away) was acknowledged.
        async with asyncio.timeout(30):
            while keep_alive.outstanding_since is not None or math.isinf(keep_alive.latency):
                await asyncio.sleep(0.02)
        measured = keep_alive.latency

        # A duplicate ACK: stock discord.py would report "now minus the last send" as latency.
        assert await fake_discord.send_heartbeat_ack(bot) == 1
        async with asyncio.timeout(30):
            while keep_alive.stray_acks < 1:
                await asyncio.sleep(0.02)
        assert keep_alive.latency == measured
        assert runner.client.latency == measured
        listed = (await running.http.get("/bots")).json()["bots"]
        assert listed[0]["latencyMs"] == round(measured * 1000, 1)

        # The next heartbeat is measured from its own send, not from the stray ACK.
        keep_alive.get_payload()  # what discord.py calls right before sending one
        sent = keep_alive.outstanding_since
        assert sent is not None
        assert await fake_discord.send_heartbeat_ack(bot) == 1
        async with asyncio.timeout(30):
            while keep_alive.outstanding_since is not None:
                await asyncio.sleep(0.02)
        assert keep_alive.stray_acks == 1 and 0 < keep_alive.latency != measured


def _heartbeats_of(connection: object) -> list[HonestKeepAlive]:
    return [
        handler
        for handler in beating_handlers()
        if handler.ws._connection is connection  # pyright: ignore[reportPrivateUsage]
    ]


async def test_a_handshake_cut_short_leaves_no_heartbeat_going(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: AsyncMongoClient[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """discord.py starts a connection's heartbeat on HELLO and stops it only through the
    `DiscordWebSocket` the client knows, which it learns once IDENTIFY is sent. A bot stopped while
    it waits to IDENTIFY (here: its IDENTIFY log write never lands) used to leave it beating (a
    thread, then, firing into a closed event loop: "Event loop is closed")."""
    waiting = asyncio.Event()

    async def never_claimed(self: IdentifyLedger) -> None:
        waiting.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(IdentifyLedger, "claim", never_claimed)
    bot = fake_discord.add_bot(name="Cut short")
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await asyncio.wait_for(waiting.wait(), 30)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.client is not None
        connection = runner.client._connection  # pyright: ignore[reportPrivateUsage]
        assert runner.client.ws is None  # the handshake's socket is not the client's yet
        assert len(_heartbeats_of(connection)) == 1
    async with asyncio.timeout(30):
        while _heartbeats_of(connection):
            await asyncio.sleep(0.02)


def _ready_keep_alive(running: Any, bot: Any) -> HonestKeepAlive:
    runner = running.manager.get_runner(bot.client_id)
    assert runner is not None and runner.client is not None and runner.client.ws is not None
    keep_alive = runner.client.ws._keep_alive  # pyright: ignore[reportPrivateUsage]  # what the seam installs
    assert isinstance(keep_alive, HonestKeepAlive)
    return keep_alive


async def test_heartbeats_are_sent_from_the_event_loop_not_a_thread_per_connection(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    fake_discord.heartbeat_interval_ms = 200  # several beats within the test
    bots = [fake_discord.add_bot(name=f"Beat {n}") for n in range(3)]
    for bot in bots:
        await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        for bot in bots:
            await running.wait_for(bot, BotState.READY)
        handlers = [_ready_keep_alive(running, bot) for bot in bots]
        async with asyncio.timeout(30):
            while any(handler.beats < 3 for handler in handlers):
                await asyncio.sleep(0.02)
        # Every beat goes on and is measured (a beat sent while the start-up was slow to ACK the
        # one on HELLO makes that ACK count as stray: only the oldest unanswered beat is timed).
        assert all(handler.beating for handler in handlers)
        assert all(0 < handler.latency < 10 for handler in handlers)
        # ... from the event loop: no connection has a thread of its own.
        assert not [t for t in threading.enumerate() if isinstance(t, discord.gateway.KeepAliveHandler)]
        assert {handler for handler in beating_handlers() if handler in handlers} == set(handlers)
    assert not set(beating_handlers()) & set(handlers)  # the stop stopped them all


async def test_a_connection_that_stops_answering_is_closed_and_resumed(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    """A zombie connection (nothing received for discord.py's heartbeat timeout) is closed with
    4000 at the next beat, as discord.py's thread did, and discord.py resumes the session."""
    fake_discord.heartbeat_interval_ms = 200
    bot = fake_discord.add_bot(name="Zombie")
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        keep_alive = _ready_keep_alive(running, bot)
        keep_alive.heartbeat_timeout = 1.0  # discord.py's is 60 s
        fake_discord.ack_heartbeats = False
        async with asyncio.timeout(30):
            while 4000 not in bot.client_closes:
                await asyncio.sleep(0.02)
        assert not keep_alive.beating
        fake_discord.ack_heartbeats = True
        await fake_discord.wait_for_resume(bot)
        await running.wait_for(bot, BotState.READY)
        assert _ready_keep_alive(running, bot) is not keep_alive  # a new connection, a new heartbeat
