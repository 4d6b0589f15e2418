"""Isolation between bots, node failover, idleness, 24/7, DJ rules and vote skip."""

from __future__ import annotations

import asyncio

import pytest

from app.music import nodes
from tests.music.conftest import World, WorldFactory, until


async def test_two_bots_play_independently_under_their_own_identity(make_world: WorldFactory) -> None:
    world: World = await make_world(bots=2)
    first_bot, second_bot = world.bots
    second_room = world.discord.add_voice_channel(world.guild.id, "Second room")
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob", second_room)

    await world.run(alice, "play", bot=first_bot, query="Song 1")
    await world.run(alice, "play", bot=first_bot, query="Song 2")
    await world.run(bob, "play", bot=second_bot, query="Song 5")
    await world.playing("Song 1", first_bot)
    await world.playing("Song 5", second_bot)

    # Each bot's voice session reached Lavalink on that bot's own session (User-Id).
    for bot, channel in ((first_bot, world.voice_channel), (second_bot, second_room)):
        session = world.lavalink.session_for_user(bot.client_id)
        assert session is not None
        voice = session.players[world.guild.id].voice
        assert voice["channelId"] == str(channel)
        discord_state = world.guild.voice_state(bot.client_id)
        assert discord_state is not None and voice["sessionId"] == discord_state["session_id"]
    sessions = {s.user_id for s in world.lavalink.sessions.values()}
    assert {first_bot.client_id, second_bot.client_id} <= sessions

    first, second = world.player(first_bot), world.player(second_bot)
    assert first is not None and second is not None
    assert [t.title for t in first.queue] == ["Song 2"] and len(second.queue) == 0
    await world.run(bob, "skip", bot=second_bot)
    await until(lambda: (p := world.lavalink_player(second_bot)) is not None and p.track is None)
    assert (await world.playing("Song 1", first_bot)).track is not None

    # Settings are per (bot, guild): one bot's DJ role is not the other's.
    role = world.discord.add_role(world.guild.id, "DJ")
    admin = world.discord.add_user(name="Admin")
    world.discord.add_member(world.guild.id, admin, permissions=1 << 5)  # MANAGE_GUILD
    await world.run(admin, "settings", bot=first_bot, subcommand="dj-role", role=str(role))
    assert (await world.service(first_bot).guild_settings.get(world.guild.id)).dj_role_id == role
    assert (await world.service(second_bot).guild_settings.get(world.guild.id)).dj_role_id is None


async def test_a_dead_node_hands_its_players_to_the_other(make_world: WorldFactory) -> None:
    world = await make_world(lavalinks=2)
    user = await world.user_in_voice()
    for n in (1, 2, 3):
        await world.run(user, "play", query=f"Song {n}")
    await world.playing("Song 1")
    player = world.player()
    assert player is not None
    source = next(n for n in world.lavalinks if n.session_for_user(world.bot.client_id)
                  and world.guild.id in n.session_for_user(world.bot.client_id).players)  # type: ignore[union-attr]  # fmt: skip
    target = next(n for n in world.lavalinks if n is not source)
    await source.advance(42_000)  # a playerUpdate at 42 s
    await until(lambda: player.position >= 42_000)

    await source.shutdown_node()
    await until(lambda: (p := target.get_player(world.guild.id, user_id=world.bot.client_id)) is not None
                and p.track is not None, timeout=30)  # fmt: skip
    moved = target.get_player(world.guild.id, user_id=world.bot.client_id)
    assert moved is not None and moved.track is not None
    assert moved.track["info"]["title"] == "Song 1"
    # Within one playerUpdate interval of where it was.
    assert 42_000 <= moved.position_ms <= 42_000 + 5_000
    assert moved.voice["channelId"] == str(world.voice_channel)
    assert [t.title for t in player.queue] == ["Song 2", "Song 3"]
    assert player.node.identifier.endswith(f"node{world.lavalinks.index(target)}")


async def test_a_restarted_lavalink_gets_its_players_back(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    await world.lavalink.advance(20_000)
    player = world.player()
    assert player is not None
    await until(lambda: player.position >= 20_000)

    await world.lavalink.shutdown_node()
    await until(lambda: not world.service().nodes.healthy())
    await world.lavalink.restart()
    restored = await world.playing("Song 1")
    assert 20_000 <= restored.position_ms <= 25_000
    assert restored.voice["channelId"] == str(world.voice_channel)


async def test_idle_leave_unless_247(make_world: WorldFactory) -> None:
    world = await make_world(music_idle_timeout=0.3)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    await world.lavalink.finish_track(world.guild.id, user_id=world.bot.client_id)
    await until(lambda: world.player() is None, timeout=30)
    left = await world.discord.wait_for_channel_message(world.text_channel, lambda m: "Left" in m.text)
    assert "nothing was playing" in left.text

    manager = world.discord.add_user(name="Manager")
    world.discord.add_member(world.guild.id, manager, permissions=1 << 5)
    assert "24/7 mode **on**" in (await world.run(manager, "247", state="on")).text
    await world.run(user, "play", query="Song 2")
    await world.playing("Song 2")
    await world.lavalink.finish_track(world.guild.id, user_id=world.bot.client_id)
    await until(lambda: (p := world.player()) is not None and p.idle_since is not None)
    await asyncio.sleep(1.0)
    assert world.player() is not None  # still there


async def test_dj_rules_and_vote_skip(make_world: WorldFactory) -> None:
    world = await make_world()
    role = world.discord.add_role(world.guild.id, "DJ")
    dj = await world.user_in_voice("DJ")
    world.discord.add_member(world.guild.id, dj, roles=[role])
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob")
    manager = world.discord.add_user(name="Manager")
    world.discord.add_member(world.guild.id, manager, permissions=1 << 5)
    await world.run(manager, "settings", subcommand="dj-role", role=str(role))

    await world.run(dj, "play", query="Song 1")
    await world.run(alice, "play", query="Song 2")  # anyone can add
    await world.run(bob, "play", query="Song 3")
    await world.playing("Song 1")

    refused = await world.run(alice, "pause")
    assert refused.ephemeral and "Only DJs" in refused.text
    refused = await world.run(alice, "clear")
    assert refused.ephemeral and "Only DJs" in refused.text
    own = await world.run(alice, "remove", positions="1")  # Song 2 is Alice's own
    assert "Removed **Song 2**" in own.text
    not_own = await world.run(alice, "remove", positions="1")  # Song 3 is Bob's
    assert not_own.ephemeral and "Only DJs" in not_own.text

    # Three listeners: a skip needs two votes.
    vote = await world.run(alice, "skip")
    assert "Vote to skip: 1/2" in vote.text
    await world.run(bob, "skip")
    await world.playing("Song 3")
    # Bob's own track: he skips it at once.
    assert "Skipped **Song 3**" in (await world.run(bob, "skip")).text
    # The DJ can do anything.
    await world.run(dj, "play", query="Song 4")
    assert "Paused" in (await world.run(dj, "pause")).text

    shown = await world.run(manager, "settings", subcommand="show")
    assert shown.ephemeral and "DJ role" in shown.text
    assert "off" in (await world.run(manager, "settings", subcommand="announcements", state="off")).text
    # Manager-only commands are hidden from members by their default permissions.
    with pytest.raises(PermissionError):
        await world.run(alice, "247", state="on")


async def test_a_silent_node_is_given_up_after_the_heartbeat_and_hands_its_players_over(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lavalink that goes quiet without closing (host gone, frozen JVM) is noticed only by
    aiohttp's heartbeat, which the nodes are built with (`nodes.HEARTBEAT`, 30 s; short here)."""
    monkeypatch.setattr(nodes, "HEARTBEAT", 0.5)
    world = await make_world(lavalinks=2)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    player = world.player()
    assert player is not None
    bot_id = world.bot.client_id
    source = next(
        n for n in world.lavalinks if (s := n.session_for_user(bot_id)) and world.guild.id in s.players
    )
    target = next(n for n in world.lavalinks if n is not source)

    assert [node.heartbeat for node in world.service().nodes.nodes] == [0.5, 0.5]
    source.go_silent(bot_id)  # no close frame, no reset: only a missing pong tells
    await until(lambda: (p := target.get_player(world.guild.id, user_id=bot_id)) is not None
                and p.track is not None, timeout=30)  # fmt: skip
    moved = target.get_player(world.guild.id, user_id=bot_id)
    assert moved is not None and moved.track is not None and moved.track["info"]["title"] == "Song 1"
    assert player.node.identifier.endswith(f"node{world.lavalinks.index(target)}")
