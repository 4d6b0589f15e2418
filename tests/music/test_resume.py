"""Resume after restart: saved players come back in their channels at their positions."""

from __future__ import annotations

import wavelink

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
