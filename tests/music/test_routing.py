"""One network, not N bots: routing across the fleet, the busy answer, invites and their lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlparse

from pymongo import AsyncMongoClient

from app.db.models import MusicBot, ServerMusicBot, VoiceAssignment
from tests.music.conftest import World, WorldFactory, until

Mongo = AsyncMongoClient[dict[str, Any]]


async def assignment(world: World, mongo: Mongo, client_id: int) -> dict[str, Any] | None:
    database = mongo[world.app.app.state.settings.mongodb_database]
    bot = await database[MusicBot.Settings.name].find_one({"client_id": client_id})
    assert bot is not None
    return await database[ServerMusicBot.Settings.name].find_one(
        {"server_id": world.guild.id, "music_bot_id": bot["_id"]}
    )


async def test_three_bots_four_channels_and_a_working_invite(make_world: WorldFactory, mongo: Mongo) -> None:
    world = await make_world(bots=3, outside=1)
    fourth_bot = world.outsiders[0]
    rooms = [world.voice_channel] + [
        world.discord.add_voice_channel(world.guild.id, f"Room {n}") for n in (2, 3, 4)
    ]
    users = [await world.user_in_voice(f"User {n}", room) for n, room in enumerate(rooms, 1)]
    bot_a = world.bots[0]

    # Every /play goes to bot A: A joins the first channel, the others are routed to free bots.
    acting: list[str] = []
    for n, user in enumerate(users[:3], 1):
        answer = await world.run(user, "play", bot=bot_a, query=f"Song {n}")
        assert not answer.ephemeral
        acting.append(answer.text.split("**")[1])
    assert sorted(acting) == ["Chorus 1", "Chorus 2", "Chorus 3"]
    assert acting[0] == "Chorus 1"  # the receiving bot, free, takes the first
    for bot in world.bots:
        assert world.discord.voice_channel_of(world.guild.id, bot.client_id) in rooms[:3]
    assert len({world.discord.voice_channel_of(world.guild.id, b.client_id) for b in world.bots}) == 3

    busy = await world.run(users[3], "play", bot=bot_a, query="Song 4")
    assert busy.ephemeral and "All 3 of our music bots here are busy" in busy.text
    (button,) = busy.messages[0].buttons
    assert button.url is not None and "Chorus 4" in (button.label or "")
    query = parse_qs(urlparse(button.url).query)
    assert query["client_id"] == [str(fourth_bot.client_id)]
    assert query["scope"] == ["bot applications.commands"]
    pending = await assignment(world, mongo, fourth_bot.client_id)
    assert pending is not None and pending["status"] == "PENDING_INVITE"

    # The invite is used: the bot joins, becomes ACTIVE, and takes the fourth channel.
    await world.discord.add_bot_to_guild(fourth_bot, world.guild.id)

    async def active() -> bool:
        record = await assignment(world, mongo, fourth_bot.client_id)
        return record is not None and record["status"] == "ACTIVE"

    async with asyncio.timeout(30):
        while not await active():
            await asyncio.sleep(0.02)
    answer = await world.run(users[3], "play", bot=bot_a, query="Song 4")
    assert "**Chorus 4**" in answer.text
    await world.playing("Song 4", fourth_bot)

    listed = (await world.app.http.get(f"/guilds/{world.guild.id}/bots")).json()
    assert {b["name"]: b["status"] for b in listed["bots"]} == {f"Chorus {n}": "ACTIVE" for n in (1, 2, 3, 4)}
    assert all(b["voiceChannelId"] for b in listed["bots"])

    bots_answer = await world.run(users[0], "bots", bot=bot_a)
    assert bots_answer.ephemeral and bots_answer.text.count("playing in") == 4


async def test_control_commands_act_on_the_player_in_the_callers_channel(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    bot_a, bot_b = world.bots
    room = world.discord.add_voice_channel(world.guild.id, "B's room")
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob", room)
    await world.run(alice, "play", bot=bot_a, query="Song 1")
    answer = await world.run(bob, "play", bot=bot_a, query="Song 5")
    assert "**Chorus 2**" in answer.text  # A is busy with Alice: B plays for Bob
    await world.run(bob, "play", bot=bot_a, query="Song 6")
    await world.playing("Song 5", bot_b)

    skipped = await world.run(bob, "skip", bot=bot_a)  # sent to A, acts on B's player
    assert "Skipped **Song 5**" in skipped.text and "**Chorus 2**" in skipped.text
    await world.playing("Song 6", bot_b)
    assert (await world.playing("Song 1", bot_a)).track is not None

    queue = await world.run(bob, "queue", bot=bot_a)
    assert "Song 6" in queue.text and "Song 1" not in queue.text


async def test_two_plays_at_once_in_one_channel_make_one_bot_and_one_queue(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    bot_a, bot_b = world.bots
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob")
    first, second = await asyncio.gather(
        world.discord.send_command(bot_a, guild_id=world.guild.id, channel_id=world.text_channel, user=alice,
                                   name="play", options={"query": "Song 1"}),
        world.discord.send_command(bot_b, guild_id=world.guild.id, channel_id=world.text_channel, user=bob,
                                   name="play", options={"query": "Song 2"}),
    )  # fmt: skip
    for interaction in (first, second):
        await interaction.wait_for_message(lambda m: bool(m.text), timeout=30)
    in_channel = [
        b
        for b in world.bots
        if world.discord.voice_channel_of(world.guild.id, b.client_id) == world.voice_channel
    ]
    assert len(in_channel) == 1
    player = world.player(in_channel[0])
    assert player is not None and player.current is not None
    titles = {player.current.title, *(t.title for t in player.queue)}
    assert titles == {"Song 1", "Song 2"}
    # Both answers name the same acting bot, and each came from the bot that received it.
    name = in_channel[0].name
    assert f"**{name}**" in first.text and f"**{name}**" in second.text
    assert first.bot is bot_a and second.bot is bot_b


async def test_invites_respect_caps_load_and_expire(make_world: WorldFactory, mongo: Mongo) -> None:
    world = await make_world(bots=1, outside=2, invite_expiry_seconds=0.3, admin_api_token="admin-secret")
    full, roomy = world.outsiders
    other_guild = world.discord.add_guild()
    await world.discord.add_bot_to_guild(full, other_guild.id)
    database = mongo[world.app.app.state.settings.mongodb_database]
    music_bots = database[MusicBot.Settings.name]
    async with asyncio.timeout(30):
        while (await music_bots.find_one({"client_id": full.client_id}) or {}).get("guild_count") != 1:
            await asyncio.sleep(0.02)
    await music_bots.update_one({"client_id": full.client_id}, {"$set": {"guild_cap": 1}})

    http = world.app.http
    assert (await http.post(f"/guilds/{world.guild.id}/invite")).status_code == 401
    wrong = await http.post(f"/guilds/{world.guild.id}/invite", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    auth = {"Authorization": "Bearer admin-secret"}
    created = await http.post(f"/guilds/{world.guild.id}/invite", headers=auth)
    assert created.status_code == 201
    body = created.json()
    assert body["clientId"] == str(roomy.client_id) and str(roomy.client_id) in body["url"]
    assert set(body) == {"clientId", "name", "url"}
    # Asking again offers the same pending bot, not a new one.
    assert (await http.post(f"/guilds/{world.guild.id}/invite", headers=auth)).json()["clientId"] == body[
        "clientId"
    ]

    async def expired() -> bool:
        record = await assignment(world, mongo, roomy.client_id)
        return (
            record is not None
            and record["status"] == "FAILED"
            and record["reason"] == "invite expired unused"
        )

    async with asyncio.timeout(30):
        while not await expired():
            await asyncio.sleep(0.05)

    # The full bot is never offered; once the roomy one is in the guild, nobody is left.
    await world.discord.add_bot_to_guild(roomy, world.guild.id)
    await until(lambda: len(world.app.manager.router.services_in_guild(world.guild.id)) == 2)
    async with asyncio.timeout(30):
        while (record := await assignment(world, mongo, roomy.client_id)) is None or record[
            "status"
        ] != "ACTIVE":
            await asyncio.sleep(0.02)
    none_left = await http.post(f"/guilds/{world.guild.id}/invite", headers=auth)
    assert none_left.status_code == 409 and "guild cap" in none_left.json()["detail"]


async def test_a_bot_without_voice_permission_is_recorded_failed(
    make_world: WorldFactory, mongo: Mongo
) -> None:
    world = await make_world(bots=1, outside=1)
    muted = world.outsiders[0]
    everyone = world.guild.id  # the @everyone role: view channels and send messages, no voice
    world.discord.set_role_permissions(world.guild.id, everyone, (1 << 10) | (1 << 11))
    await world.discord.add_bot_to_guild(muted, world.guild.id)

    async def failed() -> bool:
        record = await assignment(world, mongo, muted.client_id)
        return record is not None and record["status"] == "FAILED"

    async with asyncio.timeout(30):
        while not await failed():
            await asyncio.sleep(0.02)
    record = await assignment(world, mongo, muted.client_id)
    assert record is not None and "Connect" in record["reason"] and "Speak" in record["reason"]


async def test_invite_command_in_discord(make_world: WorldFactory) -> None:
    world = await make_world(bots=1, outside=1)
    user = await world.user_in_voice()
    answer = await world.run(user, "invite")
    (button,) = answer.messages[0].buttons
    assert button.url is not None and str(world.outsiders[0].client_id) in button.url


async def test_voice_assignments_follow_the_players(make_world: WorldFactory) -> None:
    """Taken before a bot joins (naming this worker and the bot's lease epoch), released when it
    leaves; a row of a bot nobody runs any more does not keep a channel from a /play."""
    world = await make_world(bots=2)
    bot_a, bot_b = world.bots
    fleet = world.app.manager.fleet
    room = world.discord.add_voice_channel(world.guild.id, "Room 2")
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob", room)
    await VoiceAssignment.get_pymongo_collection().insert_one(
        {"guild_id": world.guild.id, "channel_id": room, "bot_id": 999, "worker": "gone:1:x", "epoch": 1}
    )

    await world.run(alice, "play", bot=bot_a, query="Song 1")
    answer = await world.run(bob, "play", bot=bot_a, query="Song 2")
    assert "**Chorus 2**" in answer.text  # the stale row of bot 999 was cleared
    rows = {(r.channel_id, r.bot_id): r for r in await VoiceAssignment.find_all().to_list()}
    assert set(rows) == {(world.voice_channel, bot_a.client_id), (room, bot_b.client_id)}
    mine = rows[(world.voice_channel, bot_a.client_id)]
    assert (
        mine.worker == fleet.me and mine.epoch == fleet.epoch_of(bot_a.client_id) and mine.since is not None
    )

    await world.run(alice, "leave", bot=bot_a)

    async def released() -> bool:
        return {r.bot_id for r in await VoiceAssignment.find_all().to_list()} == {bot_b.client_id}

    async with asyncio.timeout(30):
        while not await released():
            await asyncio.sleep(0.05)
