"""Answers follow the member's Discord language, unless the server chose one for every bot."""

from __future__ import annotations

from typing import Any

from tests.fakes.discord import FakeUser
from tests.fakes.discord_interactions import FakeInteraction
from tests.music.conftest import World, WorldFactory


async def _run(world: World, user: FakeUser, name: str, *, locale: str, **options: Any) -> FakeInteraction:
    interaction = await world.discord.send_command(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
        name=name, options=options, locale=locale,
    )  # fmt: skip
    await interaction.wait_for_message(lambda message: bool(message.text), timeout=30)
    return interaction


async def _admin_run(world: World, admin: FakeUser, language: str, *, locale: str) -> FakeInteraction:
    interaction = await world.discord.send_command(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=admin,
        name="settings", subcommand="language", options={"language": language}, locale=locale,
    )  # fmt: skip
    await interaction.wait_for_message(lambda message: bool(message.text), timeout=30)
    return interaction


async def test_answers_errors_and_buttons_follow_the_members_locale(make_world: WorldFactory) -> None:
    world = await make_world()
    somchai = await world.user_in_voice("Somchai")
    alice = await world.user_in_voice("Alice")

    playing = await _run(world, somchai, "play", locale="th", query="Song 1")
    assert "กำลังเล่น" in playing.text and "Song 1" in playing.text
    english = await _run(world, alice, "play", locale="en-US", query="Song 2")
    assert "Added" in english.text and "position 1" in english.text
    await world.playing("Song 1")

    refused = await _run(world, somchai, "seek", locale="th", time="soon")
    assert refused.ephemeral and "ไม่ใช่เวลา" in refused.text
    out_of_range = await _run(world, somchai, "volume", locale="th", level=999)
    assert out_of_range.ephemeral and "ระดับเสียงต้องเป็นจำนวนเต็มตั้งแต่ 0 ถึง 150" in out_of_range.text

    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))
    pause_id = f"chorus:pause:{world.bot.client_id}:{world.guild.id}"
    pressed = await world.discord.click_button(world.bot, controller, pause_id, user=somchai, locale="th")
    await pressed.wait_for_message(timeout=30)
    assert pressed.ephemeral and "หยุดชั่วคราวแล้ว" in pressed.text

    queue = await _run(world, somchai, "queue", locale="th")
    assert "คิวเพลง" in queue.text and "Song 2" in queue.text


async def test_the_servers_language_wins_for_every_bot(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    admin = world.discord.add_user(name="Admin")
    world.discord.add_member(world.guild.id, admin, permissions=0x20)  # Manage Server
    alice = await world.user_in_voice("Alice")

    chosen = await _admin_run(world, admin, "th", locale="en-US")
    assert chosen.ephemeral and "ภาษาไทย" in chosen.text  # answered in the new language already
    answer = await _run(world, alice, "play", locale="en-US", query="Song 1")
    assert "กำลังเล่น" in answer.text
    # The other bot of the network answers in Thai too: the choice is the server's.
    other = await world.discord.send_command(
        world.bots[1], guild_id=world.guild.id, channel_id=world.text_channel, user=alice,
        name="queue", options={},
    )  # fmt: skip
    await other.wait_for_message(lambda message: bool(message.text), timeout=30)
    assert "คิวเพลง" in other.text

    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))
    assert "กำลังเล่น" in controller.text  # nobody asked for it: the server's language
    assert any(button.label == "ข้าม" for button in controller.buttons)

    back = await _admin_run(world, admin, "auto", locale="en-US")
    assert "each member's Discord language" in back.text
    again = await _run(world, alice, "queue", locale="en-US")
    assert "Queue" in again.text


async def test_a_thai_community_gets_a_thai_controller(make_world: WorldFactory) -> None:
    world = await make_world(guild_locale="th")
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")  # the member's own client is in English
    controller = await world.discord.wait_for_channel_message(world.text_channel, lambda m: bool(m.buttons))
    assert "กำลังเล่น" in controller.text and "Song 1" in controller.text
