"""A collection a worker follows is dropped behind its back: the worker keeps following.

A drop (or rename) ends every change stream on the collection with an `invalidate` event, and a
PyMongo change stream closed that way answers `try_next()` with None at once, forever, without
any I/O: a loop that calls it until told to stop never yields to the event loop again, and the
whole worker (gateways, HTTP API, shutdown) freezes at 100% CPU. That is how the test suite hung
when a test failed before its app had stopped following and its database was then dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.db import routing as routing_db
from app.db.models import FleetRequest, MusicBot, RequestStatus, VoiceAssignment
from app.settings import Settings
from tests.bots.fleet.workers import until
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


def following() -> bool:
    """Every change-stream task of the worker is still running."""
    names = {
        "fleet-workers-stream",
        "fleet-leases-stream",
        "fleet-voice-stream",
        "fleet-requests",
        "fleet-watcher",
    }
    running = {task.get_name() for task in asyncio.all_tasks() if not task.done()}
    return names <= running


async def test_dropped_collections_end_the_streams_and_the_worker_follows_new_ones(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot()
    await store_bot(mongo, fleet_settings, bot)
    database = mongo[fleet_settings.mongodb_database]
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        view, me = running.manager.fleet.view, running.manager.fleet.me

        # A malformed document (written by hand, say) is skipped: its stream goes on.
        voice = database[VoiceAssignment.Settings.name]
        await voice.insert_one({"guild_id": "seven"})
        await voice.insert_one({"guild_id": 6, "channel_id": 60, "bot_id": bot.client_id, "epoch": 0})

        async def first_mirrored() -> bool:
            return view.voice(6, 60) is not None

        await until(first_mirrored, what="a voice assignment after a malformed one to reach the mirror")
        assert following(), "a stream ended"

        # The fleet mirror's stream on voice_assignments, and the forwarded requests' stream.
        await database[FleetRequest.Settings.name].insert_one({"placeholder": True})
        for name in (VoiceAssignment.Settings.name, FleetRequest.Settings.name):
            await database.drop_collection(name)
        await voice.insert_one({"guild_id": 7, "channel_id": 70, "bot_id": bot.client_id, "epoch": 0})

        async def mirrored() -> bool:
            return view.voice(7, 70) is not None

        await until(mirrored, what="a voice assignment made after the drop to reach the mirror")

        request_id = await routing_db.submit_request(
            target_bot=bot.client_id, target_worker=me, payload={"type": 2, "id": "1", "token": "x"}
        )

        async def claimed() -> bool:
            document = await database[FleetRequest.Settings.name].find_one({"_id": request_id})
            return document is not None and document["status"] == RequestStatus.TAKEN.value

        await until(claimed, what="a request forwarded after the drop to be claimed")
        assert following(), "a stream ended"

        # The hot-reload stream on music_bots: the drop removes the bot (it stops); stored
        # again, it starts again.
        await database.drop_collection(MusicBot.Settings.name)

        async def removed() -> bool:
            return running.manager.get_runner(bot.client_id) is None

        await until(removed, what="the bot to stop once music_bots is dropped")
        await store_bot(mongo, fleet_settings, bot)

        async def back() -> bool:
            return running.manager.get_runner(bot.client_id) is not None

        await until(back, what="the bot stored again to start")
        await running.wait_for(bot, BotState.READY)
