"""The voice channel's status shows what plays; links people paste (LavaSrc, SoundCloud, HTTP)."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.discord import Permission
from tests.music.conftest import WorldFactory, until


async def test_the_channel_shows_the_track_until_the_player_leaves(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    admin = world.discord.add_user(name="Admin")
    world.discord.add_member(world.guild.id, admin, permissions=Permission.MANAGE_GUILD)
    await world.run(user, "play", query="Song 1")
    await world.run(user, "play", query="Song 2")
    await world.playing("Song 1")
    channel = world.voice_channel
    await until(
        lambda: world.discord.voice_status(channel) == "🎶 Song 1 — Band", timeout=30, what="status set"
    )

    await world.run(user, "skip")
    await until(
        lambda: world.discord.voice_status(channel) == "🎶 Song 2 — Band", timeout=30, what="status follows"
    )

    off = await world.run(admin, "settings", subcommand="channel-status", state="off")
    assert "Voice channel status **off**" in off.text
    await until(
        lambda: world.discord.voice_status(channel) is None, timeout=30, what="cleared when turned off"
    )
    await world.run(admin, "settings", subcommand="channel-status", state="on")
    await until(
        lambda: world.discord.voice_status(channel) == "🎶 Song 2 — Band", timeout=30, what="shown again"
    )

    await world.run(user, "leave")
    await until(
        lambda: world.discord.voice_status(channel) is None, timeout=30, what="cleared when the player leaves"
    )


async def test_without_the_permission_it_is_logged_once_and_music_goes_on(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world()
    world.discord.deny_bot_permissions(
        world.guild.id, world.bot, world.voice_channel, Permission.SET_VOICE_CHANNEL_STATUS
    )
    user = await world.user_in_voice()
    caplog.set_level(logging.INFO, logger="app.music.channel_status")
    for n in (1, 2, 3):
        await world.run(user, "play", query=f"Song {n}")
    await world.playing("Song 1")
    await world.run(user, "skip")
    await world.playing("Song 2")
    await world.run(user, "skip")
    await world.playing("Song 3")
    refusals = [r for r in caplog.records if "Set Voice Channel Status" in r.getMessage()]
    assert len(refusals) == 1
    assert world.discord.voice_status(world.voice_channel) is None
    assert not world.discord.voice_status_updates


async def test_spotify_apple_music_and_deezer_links_play_through_lavasrc(make_world: WorldFactory) -> None:
    world = await make_world(lavalink_options={"lavasrc": True})
    spotify = "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC"
    world.lavalink.add_track(
        identifier="4uLU6hMCjMI75M1A2tKUQC", title="Spotify Song", source="spotify", uri=spotify,
        plugin_info={"albumName": "Album", "isPreview": False},
    )  # fmt: skip
    album = [
        world.lavalink.add_track(identifier=f"dz{n}", title=f"Deezer {n}", source="deezer") for n in range(3)
    ]
    world.lavalink.add_playlist("https://www.deezer.com/album/302127", "Discovery", album)
    apple = "https://music.apple.com/us/album/x/1440818839?i=1440818843"
    world.lavalink.add_track(identifier="1440818843", title="Apple Song", source="applemusic", uri=apple)
    user = await world.user_in_voice()

    answer = await world.run(user, "play", query=spotify)
    assert "Now playing **Spotify Song**" in answer.text
    await world.playing("Spotify Song")
    deezer = await world.run(user, "play", query="https://www.deezer.com/album/302127")
    assert "Added 3 track(s) from **Discovery**" in deezer.text
    assert "Apple Song" in (await world.run(user, "play", query=apple)).text


async def test_links_without_lavasrc_say_what_is_missing_and_plain_links_play(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    soundcloud = world.lavalink.add_track(identifier="artist/tune", title="Cloud Tune", source="soundcloud")
    direct = "https://files.example/radio/song.mp3"
    world.lavalink.add_track(identifier=direct, title="song.mp3", source="http", uri=direct)
    user = await world.user_in_voice()

    spotify = await world.run(user, "play", query="https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC")
    assert (
        spotify.ephemeral and "Spotify links play only when the audio server has the LavaSrc" in spotify.text
    )
    assert "Cloud Tune" in (await world.run(user, "play", query=soundcloud["info"]["uri"])).text
    await world.playing("Cloud Tune")
    assert "song.mp3" in (await world.run(user, "play", query=direct)).text
