"""latencyMs is honest: an ACK with no heartbeat outstanding (duplicate, early) changes nothing."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import discord.gateway
import pytest
from pymongo import AsyncMongoClient

from app.bots.heartbeat import HonestKeepAlive
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
        thread
        for thread in threading.enumerate()
        if isinstance(thread, HonestKeepAlive) and thread.ws._connection is connection  # pyright: ignore[reportPrivateUsage]
    ]


async def test_a_handshake_cut_short_leaves_no_heartbeat_thread(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: AsyncMongoClient[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """discord.py starts a connection's heartbeat thread on HELLO and stops it only through the
    `DiscordWebSocket` the client knows, which it learns once IDENTIFY is sent. A bot stopped while
    it waits to IDENTIFY (here: its IDENTIFY log write never lands) used to leave the thread
    beating into a closed event loop ("Event loop is closed")."""
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
        assert [thread.is_alive() for thread in _heartbeats_of(connection)] == [True]
    async with asyncio.timeout(30):
        while any(thread.is_alive() for thread in _heartbeats_of(connection)):
            await asyncio.sleep(0.02)
