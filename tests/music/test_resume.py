"""Resume after restart: saved players come back in their channels at their positions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import wavelink

from app.bots.status import BotState
from app.db.models import PlayerSnapshot, VoiceAssignment
from tests.music.conftest import WorldFactory, until


async def test_restart_resumes_three_playing_bots_at_their_positions(make_world: WorldFactory) -> None:
    world = await make_world(bots=3)
    rooms = [world.voice_channel] + [
        world.discord.add_voice_channel(world.guild.id, f"Room {n}") for n in (2, 3)
    ]
    users = [await world.user_in_voice(f"User {n}", room) for n, room in enumerate(rooms, 1)]
    plan = {0: ("Song 1", "Song 2"), 1: ("Song 4", "Song 5"), 2: ("Song 7", "Song 8")}
    for index, (first, second) in plan.items():
        await world.run(users[index], "play", bot=world.bots[0], query=first)
        await world.run(users[index], "play", bot=world.bots[0], query=second)
    playing = {}
    for bot in world.bots:
        player = world.player(bot)
        assert player is not None and player.current is not None and player.channel is not None
        playing[bot.client_id] = (player.current.title, player.channel.id)
    await world.run(users[0], "volume", level=70)
    await world.run(users[1], "filter", preset="nightcore")
    await world.run(users[2], "loop", mode="queue")
    await world.lavalink.advance(30_000)
    for bot in world.bots:
        player = world.player(bot)
        assert player is not None
        await until(lambda p=player: p.position >= 30_000)

    await world.restart()

    for bot in world.bots:
        title, channel = playing[bot.client_id]
        resumed = await world.playing(title, bot)
        assert 30_000 <= resumed.position_ms <= 33_000, resumed.position_ms
        assert world.discord.voice_channel_of(world.guild.id, bot.client_id) == channel
        player = world.player(bot)
        assert player is not None and len(player.queue) == 1
        assert player.current is not None and player.current.extras.requester  # who asked survives
    by_channel = {playing[b.client_id][1]: b for b in world.bots}
    assert (await world.playing("Song 1", by_channel[rooms[0]])).volume == 70
    nightcore = await world.playing("Song 4", by_channel[rooms[1]])
    assert nightcore.filters.get("timescale", {}).get("speed") == 1.2
    looping = world.player(by_channel[rooms[2]])
    assert looping is not None and looping.queue.mode is wavelink.QueueMode.loop_all
    # Each resumed player took its channel's voice assignment again, under the new lease epoch.
    fleet = world.app.manager.fleet
    for bot in world.bots:
        await asyncio.wait_for(world.service(bot).snapshots.restored.wait(), 30)
    rows = {(r.channel_id, r.bot_id, r.epoch) for r in await VoiceAssignment.find_all().to_list()}
    assert rows == {(playing[b.client_id][1], b.client_id, fleet.epoch_of(b.client_id)) for b in world.bots}


async def test_stale_snapshots_are_discarded_and_leave_forgets(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    first, second = world.bots
    room = world.discord.add_voice_channel(world.guild.id, "Room 2")
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob", room)
    await world.run(alice, "play", bot=first, query="Song 1")
    await world.run(bob, "play", bot=first, query="Song 2")
    await world.playing("Song 1", first)
    await world.playing("Song 2", second)

    async def remove_second() -> None:
        await world.discord.remove_bot_from_guild(second, world.guild.id)

    await world.restart(while_down=remove_second)
    await world.playing("Song 1", first)
    await world.service(second).snapshots.restored.wait()
    assert world.player(second) is None

    # A deliberate /leave means nothing to resume.
    await world.run(alice, "leave", bot=first)
    await world.restart()
    await world.service(first).snapshots.restored.wait()
    assert world.player(first) is None


async def test_restore_skips_a_channel_another_bot_of_ours_already_serves(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    first, second = world.bots
    alice = await world.user_in_voice("Alice")
    await world.run(alice, "play", bot=first, query="Song 1")
    await world.playing("Song 1", first)

    async def first_cannot_reach_lavalink() -> None:
        world.lavalink.refused_users.add(first.client_id)

    await world.restart(while_down=first_cannot_reach_lavalink, wait=False)
    await world.app.wait_for(first, BotState.READY)  # on Discord, without Lavalink
    await world.app.wait_for(second, BotState.READY)
    await world.wait_nodes(second)
    # While the first bot still waits to restore, Alice's /play reaches the second one.
    answer = await world.run(alice, "play", bot=second, query="Song 5")
    assert "Chorus 2" in answer.text
    await world.playing("Song 5", second)

    world.lavalink.refused_users.discard(first.client_id)
    await world.wait_nodes(first)
    await asyncio.wait_for(world.service(first).snapshots.restored.wait(), 30)
    assert world.player(first) is None
    assert world.discord.voice_channel_of(world.guild.id, first.client_id) is None
    assert world.discord.users_in_voice(world.guild.id, world.voice_channel) == {alice.id, second.client_id}
    assert await _saved_players(first.client_id) == 0
    # The channel is the second bot's, fleet-wide; nothing of the first bot's old player is left.
    rows = {(r.channel_id, r.bot_id) for r in await VoiceAssignment.find_all().to_list()}
    assert rows == {(world.voice_channel, second.client_id)}


async def _saved_players(bot_id: int) -> int:
    return await PlayerSnapshot.find(PlayerSnapshot.bot_id == bot_id).count()


async def test_disabling_a_bot_forgets_its_players(
    make_world: WorldFactory, mongo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    assert world.settings is not None
    bots = mongo[world.settings.mongodb_database]["music_bots"]
    manager = world.app.manager
    bot_id = world.bot.client_id

    await bots.update_one({"client_id": bot_id}, {"$set": {"enabled": False}})  # as `chorus bots disable`
    # Stopped (which saves its players, as every stop does), then forgotten.
    await until(lambda: "forgot 1 saved player(s)" in caplog.text, timeout=30)
    assert manager.get_runner(bot_id) is None and await _saved_players(bot_id) == 0
    assert world.discord.voice_channel_of(world.guild.id, bot_id) is None

    await bots.update_one({"client_id": bot_id}, {"$set": {"enabled": True}})
    await until(lambda: manager.get_runner(bot_id) is not None, timeout=30)
    await world.wait_ready()
    await asyncio.wait_for(world.service().snapshots.restored.wait(), 30)
    assert world.player() is None
    assert world.discord.voice_channel_of(world.guild.id, bot_id) is None


async def test_a_restart_keeps_the_players_but_not_those_saved_too_long_ago(
    make_world: WorldFactory, mongo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(bots=2, snapshot_max_age=3600)
    first, second = world.bots
    room = world.discord.add_voice_channel(world.guild.id, "Room 2")
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob", room)
    await world.run(alice, "play", bot=first, query="Song 1")
    await world.run(bob, "play", bot=first, query="Song 2")
    await world.playing("Song 1", first)
    await world.playing("Song 2", second)
    assert world.settings is not None
    snapshots = mongo[world.settings.mongodb_database]["player_snapshots"]

    async def age_the_second_bots_snapshot() -> None:
        two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
        await snapshots.update_one({"bot_id": second.client_id}, {"$set": {"saved_at": two_hours_ago}})

    await world.restart(while_down=age_the_second_bots_snapshot)
    await world.playing("Song 1", first)
    await asyncio.wait_for(world.service(second).snapshots.restored.wait(), 30)
    assert world.player(second) is None
    assert "older than 60 min" in caplog.text
    assert await snapshots.count_documents({"bot_id": second.client_id}) == 0


async def test_a_resumed_lavalink_session_clears_the_stranded_position(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(lavalink_options={"keep_sessions": True})
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    lavalink_player = await world.playing("Song 1")
    patches = len(lavalink_player.patches)
    player = world.player()
    assert player is not None
    session = world.lavalink.session_for_user(world.bot.client_id)
    assert session is not None

    await world.lavalink.drop_connection(world.bot.client_id)  # the only node: the player is stranded
    await until(lambda: any(op["op"] == "ready" and op["resumed"] for op in session.sent), timeout=30)
    await world.wait_nodes(world.bot)
    await until(lambda: "resumed with node" in caplog.text)
    assert player.stranded_position is None
    await world.lavalink.advance(30_000)
    await until(lambda: player.position >= 30_000)
    # Lavalink's own player kept playing: nothing was re-created or rewound.
    assert world.lavalink_player() is lavalink_player and len(lavalink_player.patches) == patches


async def test_a_stale_owner_never_overwrites_a_newer_owners_snapshot(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots carry the lease epoch: once a newer owner saved a guild (after a takeover),
    the old owner's saves are fenced off, logged, and make the fleet check the lease."""
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    service = world.service()
    epoch = service.config.lease_epoch
    assert epoch is not None and epoch == world.app.manager.fleet.epoch_of(world.bot.client_id)
    assert await service.snapshots.save_all() == 1
    key = {"bot_id": world.bot.client_id, "guild_id": world.guild.id}
    collection = PlayerSnapshot.get_pymongo_collection()
    saved = await collection.find_one(key)
    assert saved is not None and saved["epoch"] == epoch

    await collection.update_one(key, {"$set": {"epoch": epoch + 1, "position_ms": 123_456}})
    assert await service.snapshots.save_all() == 0
    stored = await collection.find_one(key)
    assert stored is not None and (stored["epoch"], stored["position_ms"]) == (epoch + 1, 123_456)
    assert "fenced off" in caplog.text
    # The lease itself is still this worker's (only the snapshot was forged): the bot runs on.
    await asyncio.sleep(0.2)
    assert world.app.manager.get_runner(world.bot.client_id) is not None
