"""`chorus invite GUILD_ID` as a subprocess against the test database."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

from app.db.models import MusicBot, ServerMusicBot
from tests.fakes.discord import FakeDiscord
from tests.fleet import store_bot
from tests.ops.conftest import Chorus


async def test_invite_picks_the_least_loaded_bot_with_room_and_records_it(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    busy, light, full = (fake_discord.add_bot(name=n) for n in ("Busy", "Light", "Full"))
    for bot in (busy, light, full):
        await store_bot(mongo, chorus.settings, bot)
    database = mongo[chorus.settings.mongodb_database]
    bots = database[MusicBot.Settings.name]
    await bots.update_one({"client_id": busy.client_id}, {"$set": {"guild_count": 40}})
    await bots.update_one({"client_id": light.client_id}, {"$set": {"guild_count": 3}})
    await bots.update_one({"client_id": full.client_id}, {"$set": {"guild_count": 1, "guild_cap": 1}})

    first = await chorus("invite", "4242")
    assert first.code == 0, first
    assert "Light" in first.stdout and f"client_id={light.client_id}" in first.stdout
    stored = await bots.find_one({"client_id": light.client_id})
    assert stored is not None
    record = await database[ServerMusicBot.Settings.name].find_one({"server_id": 4242})
    assert (
        record is not None
        and record["status"] == "PENDING_INVITE"
        and record["music_bot_id"] == stored["_id"]
    )

    again = await chorus("invite", "4242")  # the pending invite is offered again
    assert f"client_id={light.client_id}" in again.stdout

    await bots.update_one({"client_id": busy.client_id}, {"$set": {"guild_count": 100}})
    await database[ServerMusicBot.Settings.name].update_one(
        {"server_id": 4242}, {"$set": {"status": "ACTIVE"}}
    )
    none_left = await chorus("invite", "4242")
    assert none_left.code == 1 and "every enabled bot is there already or full" in none_left.stderr
