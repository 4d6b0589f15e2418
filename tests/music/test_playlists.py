"""Saved playlists: per Discord user (on every bot), limits with clear refusals, no search on load."""

from __future__ import annotations

from typing import Any

import pytest

from app.db import playlists
from tests.fakes.discord import FakeBot, FakeUser
from tests.fakes.discord_interactions import FakeInteraction
from tests.music.conftest import World, WorldFactory, until


async def _playlist(
    world: World, user: FakeUser, subcommand: str, *, bot: FakeBot | None = None, **options: Any
) -> FakeInteraction:
    interaction = await world.discord.send_command(
        bot or world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
        name="playlist", subcommand=subcommand, options=options,
    )  # fmt: skip  # an option called `name`: World.run takes `name` itself
    await interaction.wait_for_message(lambda message: bool(message.text), timeout=30)
    return interaction


async def test_save_list_show_load_on_another_bot(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    alice = await world.user_in_voice("Alice")
    for n in (1, 2, 3):
        await world.run(alice, "play", query=f"Song {n}")
    await world.playing("Song 1")

    saved = await _playlist(world, alice, "save", name="Road trip")
    assert saved.ephemeral and "Saved **Road trip** with 3 track(s)" in saved.text
    again = await _playlist(world, alice, "save", name="road TRIP")
    assert again.ephemeral and "already have a playlist named **road TRIP**" in again.text

    listed = await _playlist(world, alice, "list")
    assert "**Road trip** · 3 track(s)" in listed.text
    shown = await _playlist(world, alice, "show", name="road trip")
    assert shown.ephemeral and shown.text.index("Song 1") < shown.text.index("Song 3")

    # Alice moves to another room: the second bot serves her there, with her own playlists.
    elsewhere = world.discord.add_voice_channel(world.guild.id, "Room 2")
    await world.discord.set_user_voice(world.guild.id, alice.id, elsewhere, user=alice)
    searches = len(world.lavalink.requests_matching("GET", "/v4/loadtracks"))
    loaded = await _playlist(world, alice, "load", bot=world.bots[1], name="Road trip")
    assert "Added 3 track(s) from **Road trip**" in loaded.text
    await until(lambda: (p := world.player(world.bots[1])) is not None and p.channel is not None
                and p.channel.id == elsewhere, timeout=30, what="the second bot plays in Room 2")  # fmt: skip
    await world.playing("Song 1", world.bots[1])
    assert len(world.lavalink.requests_matching("GET", "/v4/loadtracks")) == searches  # no new search

    autocomplete = await world.discord.send_autocomplete(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=alice,
        name="playlist", subcommand="load", focused="name", options={"name": "road"},
    )  # fmt: skip
    await autocomplete.wait_for_response(timeout=30)
    assert autocomplete.choices == [{"name": "Road trip", "value": "Road trip"}]


async def test_add_remove_delete_and_whose(make_world: WorldFactory) -> None:
    world = await make_world()
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob")

    created = await _playlist(world, alice, "add", name="Mine", query="Song 4")
    assert "Added **Song 4** to **Mine** (1 track(s) now)" in created.text
    added = await _playlist(world, alice, "add", name="Mine", query="https://music.example/t5")
    assert "(2 track(s) now)" in added.text
    assert "no playlists yet" in (await _playlist(world, bob, "list")).text  # Alice's are hers

    removed = await _playlist(world, alice, "remove", name="mine", position=1)
    assert "Removed **Song 4** from **mine**" in removed.text
    past_end = await _playlist(world, alice, "remove", name="Mine", position=5)
    assert past_end.ephemeral and "no track at position 5 (the playlist has 1)" in past_end.text
    unknown = await _playlist(world, alice, "load", name="Nope")
    assert unknown.ephemeral and "no playlist named **Nope**" in unknown.text

    deleted = await _playlist(world, alice, "delete", name="MINE")
    assert "Deleted **MINE**" in deleted.text
    assert "no playlists yet" in (await _playlist(world, alice, "list")).text
    too_long = await _playlist(world, alice, "save", name="x" * 101)
    assert too_long.ephemeral and "at most 100 characters" in too_long.text


async def test_limits_refuse_clearly_and_change_nothing(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(playlists, "PLAYLISTS_MAX", 2)
    monkeypatch.setattr(playlists, "TRACKS_MAX", 3)
    world = await make_world(music_queue_limit=2)
    tracks = [world.lavalink.add_track(identifier=f"m{n}", title=f"Mix {n}") for n in range(4)]
    world.lavalink.add_playlist("https://music.example/mix", "Mix", tracks)
    user = await world.user_in_voice()

    await _playlist(world, user, "add", name="One", query="Song 1")
    await _playlist(world, user, "add", name="Two", query="Song 2")
    third = await _playlist(world, user, "add", name="Three", query="Song 3")
    assert third.ephemeral and "already have 2 playlists" in third.text
    full = await _playlist(world, user, "add", name="One", query="https://music.example/mix")
    assert full.ephemeral and "at most 3 tracks" in full.text
    shown = await _playlist(world, user, "show", name="One")
    assert "1 track(s)" in shown.text  # nothing of the refused add was kept

    await _playlist(world, user, "add", name="One", query="Song 4")
    await _playlist(world, user, "add", name="One", query="Song 5")
    loaded = await _playlist(world, user, "load", name="One")
    # One plays, two wait: the queue limit (2) holds, the rest is said to be skipped.
    assert "Added 2 track(s) from **One**" in loaded.text and "Skipped 1" in loaded.text
