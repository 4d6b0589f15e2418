"""The now-playing controller: one message per player, persistent buttons as component interactions."""

from __future__ import annotations

import wavelink

from tests.fakes.discord import FakeMessage
from tests.music.conftest import World, WorldFactory, until


def _controllers(world: World) -> list[FakeMessage]:
    return [
        m
        for m in world.discord.channel_messages.get(world.text_channel, [])
        if not m.deleted and any(b.custom_id and b.custom_id.startswith("chorus:") for b in m.buttons)
    ]


def _id(world: World, kind: str) -> str:
    return f"chorus:{kind}:{world.bot.client_id}:{world.guild.id}"


async def test_one_controller_per_player_edited_on_each_track_and_gone_with_the_player(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    user = await world.user_in_voice("Alice")
    await world.run(user, "play", query="Song 1")
    await world.run(user, "play", query="Song 2")
    await world.playing("Song 1")
    controller = await world.discord.wait_for_channel_message(
        world.text_channel, lambda m: "Song 1" in m.text and bool(m.buttons)
    )
    assert {b.custom_id for b in controller.buttons} == {
        _id(world, kind) for kind in ("previous", "pause", "skip", "stop", "loop", "shuffle", "queue")
    }
    assert "Alice" in controller.text

    await world.run(user, "skip")
    await world.playing("Song 2")
    await until(lambda: "Song 2" in controller.text, timeout=30, what="the controller shows the new track")
    assert _controllers(world) == [controller]  # edited, not a new message per track

    await world.run(user, "leave")
    await until(lambda: controller.deleted, timeout=30, what="the controller is cleaned up")
    assert _controllers(world) == []


async def test_buttons_act_with_the_commands_rules(make_world: WorldFactory) -> None:
    world = await make_world()
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob")
    await world.run(alice, "play", query="Song 1")
    await world.run(alice, "play", query="Song 2")
    await world.run(alice, "play", query="Song 3")
    lavalink_player = await world.playing("Song 1")
    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))
    player = world.player()
    assert player is not None

    pause = await world.discord.click_button(world.bot, controller, _id(world, "pause"), user=alice)
    await pause.wait_for_message(timeout=30)
    assert pause.ephemeral and "Paused" in pause.text
    await until(lambda: lavalink_player.paused, timeout=30)
    await until(
        lambda: any(b.label == "Resume" for b in controller.buttons), timeout=30, what="the label follows"
    )

    loop = await world.discord.click_button(world.bot, controller, _id(world, "loop"), user=alice)
    await loop.wait_for_message(timeout=30)
    assert "track" in loop.text and player.queue.mode is wavelink.QueueMode.loop

    # A DJ role: Bob (no role, not alone, not the requester) votes instead of skipping...
    dj_role = world.discord.add_role(world.guild.id, "DJ")
    await world.service().guild_settings.update(world.guild.id, dj_role_id=dj_role)
    vote = await world.discord.click_button(world.bot, controller, _id(world, "skip"), user=bob)
    await vote.wait_for_message(timeout=30)
    assert "Vote to skip: 1/2" in vote.text
    assert player.current is not None and player.current.title == "Song 1"
    # ... and may not stop, shuffle or go back: the same refusals as the commands.
    for kind, phrase in (("stop", "stop the music"), ("shuffle", "shuffle the queue")):
        refused = await world.discord.click_button(world.bot, controller, _id(world, kind), user=bob)
        await refused.wait_for_message(timeout=30)
        assert refused.ephemeral and f"Only DJs can {phrase}" in refused.text
    assert len(player.queue) == 2

    queue = await world.discord.click_button(world.bot, controller, _id(world, "queue"), user=bob)
    await queue.wait_for_message(timeout=30)
    assert queue.ephemeral and "Song 2" in queue.text and "Song 3" in queue.text

    outsider = world.discord.add_user(name="Carol")
    world.discord.add_member(world.guild.id, outsider)
    away = await world.discord.click_button(world.bot, controller, _id(world, "pause"), user=outsider)
    await away.wait_for_message(timeout=30)
    assert away.ephemeral and "Join a voice channel first" in away.text


async def test_nowplaying_carries_the_buttons_and_they_say_when_the_player_ended(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    now = await world.run(user, "nowplaying")
    message = now.messages[0]
    assert _id(world, "skip") in {b.custom_id for b in message.buttons}

    await world.run(user, "leave")
    await until(lambda: world.player() is None, timeout=30)
    ended = await world.discord.click_button(world.bot, message, _id(world, "pause"), user=user)
    await ended.wait_for_message(timeout=30)
    assert ended.ephemeral and "This player has ended" in ended.text


async def test_buttons_survive_a_restart(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    for n in (1, 2, 3):
        await world.run(user, "play", query=f"Song {n}")
    await world.playing("Song 1")
    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))

    await world.restart()
    await world.playing("Song 1")
    # A fresh client, no view of ours in memory: the DynamicItem answers from the custom id.
    skip = await world.discord.click_button(world.bot, controller, _id(world, "skip"), user=user)
    await skip.wait_for_message(timeout=30)
    assert "Skipped **Song 1**" in skip.text
    await world.playing("Song 2")
    await until(
        lambda: "Song 2" in controller.text, timeout=30, what="the resumed player edits the same controller"
    )
    assert _controllers(world) == [controller]


async def test_previous_button_goes_back(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.run(user, "play", query="Song 2")
    await world.playing("Song 1")
    await world.run(user, "skip")
    await world.playing("Song 2")
    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))
    back = await world.discord.click_button(world.bot, controller, _id(world, "previous"), user=user)
    await back.wait_for_message(timeout=30)
    assert "Back to **Song 1**" in back.text
    await world.playing("Song 1")
    player = world.player()
    assert player is not None and [t.title for t in player.queue] == ["Song 2"]
