"""Every playback command through a real interaction: discord.py + wavelink against the fakes."""

from __future__ import annotations

from typing import Any

import pytest
import wavelink

from app.music import queueing
from app.music.views import search_custom_id
from tests.music.conftest import World, WorldFactory, until


async def test_play_joins_the_callers_channel_and_announces(make_world: WorldFactory) -> None:
    world: World = await make_world()
    user = await world.user_in_voice("Alice")

    answer = await world.run(user, "play", query="Song 1")
    assert not answer.ephemeral
    assert "Now playing" in answer.text and "Song 1" in answer.text
    lavalink_player = await world.playing("Song 1")
    # The bot joined the caller's channel, and Lavalink got that voice session.
    assert world.discord.voice_channel_of(world.guild.id, world.bot.client_id) == world.voice_channel
    assert lavalink_player.voice["channelId"] == str(world.voice_channel)
    announcement = await world.discord.wait_for_channel_message(
        world.text_channel, lambda m: "Now playing" in m.text
    )
    assert "Song 1" in announcement.text and "Alice" in announcement.text

    second = await world.run(user, "play", query="https://music.example/t2")
    assert "Added" in second.text and "Song 2" in second.text and "position 1" in second.text
    player = world.player()
    assert player is not None and [t.title for t in player.queue] == ["Song 2"]


async def test_a_slow_search_is_deferred_and_answered_in_its_followup(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queueing, "ANSWER_DEADLINE", 0.2)
    world = await make_world()
    user = await world.user_in_voice("Alice")

    world.lavalink.hold_loads()
    slow = await world.discord.send_command(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user, name="play",
        options={"query": "Song 1"},
    )  # fmt: skip
    # Past the deadline with the search still out: a public "thinking…" placeholder, nothing else.
    await until(lambda: slow.response_type == 5, what="the deferred answer")
    assert world.lavalink.loads_waiting == 1
    assert not slow.responses[0].get("data", {}).get("flags")
    world.lavalink.release_loads()
    await slow.wait_for_message(lambda message: "Now playing" in message.text, timeout=30)
    assert len(slow.responses) == 1  # the answer came as the defer's followup, not a second callback
    await world.playing("Song 1")

    fast = await world.run(user, "play", query="https://music.example/t2")
    assert fast.response_type == 4 and "Added" in fast.text  # within the deadline: answered directly


async def test_playlists_queue_pages_and_nowplaying(make_world: WorldFactory) -> None:
    world = await make_world()
    tracks = [
        world.lavalink.add_track(identifier=f"p{n}", title=f"Mix {n}", length_ms=60_000) for n in range(14)
    ]
    world.lavalink.add_playlist("https://music.example/list", "Road trip", tracks)
    user = await world.user_in_voice("Bob")

    answer = await world.run(user, "play", query="https://music.example/list")
    assert "Added 14 track(s) from **Road trip**" in answer.text
    await world.playing("Mix 0")

    queue = await world.run(user, "queue")
    message = queue.messages[0]
    assert "Mix 1" in message.text and "Page 1/2" in message.text and "Mix 11" not in message.text
    buttons = {b[0]: b for b in message.buttons}
    click = await world.discord.click_button(world.bot, message, "queue:next", user=user)
    await click.wait_for_response()
    edited = click.messages[-1] if click.messages else message
    await until(lambda: "Page 2/2" in edited.text)
    assert "Mix 11" in edited.text
    assert set(buttons) == {"queue:previous", "queue:next"}

    await world.lavalink.advance(30_000)
    # The position comes on the Lavalink socket, the command on the gateway's: the one may
    # overtake the other, so the bot's player is waited for first.
    await until(lambda: (player := world.player()) is not None and player.position >= 30_000)
    now = await world.run(user, "nowplaying")
    assert "Mix 0" in now.text and "Bob" in now.text and "0:30" in now.text and "🔘" in now.text


async def test_pause_resume_volume_seek_and_their_mistakes(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    lavalink_player = await world.playing("Song 1")

    assert "Paused" in (await world.run(user, "pause")).text
    await until(lambda: lavalink_player.paused)
    again = await world.run(user, "pause")
    assert again.ephemeral and "Already paused" in again.text
    assert "Resumed" in (await world.run(user, "resume")).text
    await until(lambda: not lavalink_player.paused)

    assert "50%" in (await world.run(user, "volume", level=50)).text
    await until(lambda: lavalink_player.volume == 50)

    assert "1:30" in (await world.run(user, "seek", time="1:30")).text
    await until(lambda: lavalink_player.position_ms == 90_000)
    bad = await world.run(user, "seek", time="soon")
    assert bad.ephemeral and "not a time" in bad.text
    too_far = await world.run(user, "seek", time="1:00:00")
    assert too_far.ephemeral and "only 3:00 long" in too_far.text


async def test_skip_stop_and_leave(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    for n in (1, 2, 3, 4):
        await world.run(user, "play", query=f"Song {n}")
    await world.playing("Song 1")

    assert "Skipped **Song 1**" in (await world.run(user, "skip")).text
    await world.playing("Song 2")
    assert "and 1 more" in (await world.run(user, "skip", count=2)).text
    await world.playing("Song 4")

    assert "Stopped" in (await world.run(user, "stop")).text
    await until(lambda: (p := world.lavalink_player()) is not None and p.track is None)
    player = world.player()
    assert player is not None and len(player.queue) == 0

    assert "left" in (await world.run(user, "leave")).text
    await until(lambda: world.player() is None)
    assert world.discord.voice_channel_of(world.guild.id, world.bot.client_id) is None


async def test_search_select_and_autocomplete(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()

    choices = await world.discord.send_autocomplete(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
        name="play", focused="query", options={"query": "Song 1"},
    )  # fmt: skip
    await choices.wait_for_response()
    assert choices.choices and choices.choices[0]["value"].startswith("https://music.example/t1")

    search = await world.run(user, "search", query="Song")
    assert search.ephemeral and "Song 1" in search.text
    message = search.messages[0]
    pick_id = search_custom_id(world.bot.client_id, world.guild.id)
    pick = await world.discord.select(world.bot, message, pick_id, ["2"], user=user)
    await pick.wait_for_response()
    await world.playing("Song 3")


async def test_users_mistakes_get_short_ephemeral_answers(make_world: WorldFactory) -> None:
    world = await make_world()
    outsider = world.discord.add_user(name="Outsider")
    world.discord.add_member(world.guild.id, outsider)
    not_in_voice = await world.run(outsider, "play", query="Song 1")
    assert not_in_voice.ephemeral and "Join a voice channel first" in not_in_voice.text

    user = await world.user_in_voice()
    nothing = await world.run(user, "pause")
    assert nothing.ephemeral and "Nothing is playing" in nothing.text
    no_results = await world.run(user, "play", query="zzzz-nothing-matches")
    assert no_results.ephemeral and "No results" in no_results.text
    world.lavalink.fail_load("https://music.example/broken", "This video is unavailable")
    broken = await world.run(user, "play", query="https://music.example/broken")
    assert broken.ephemeral and "unavailable" in broken.text

    await world.run(user, "play", query="Song 1")
    elsewhere = world.discord.add_voice_channel(world.guild.id, "Other room")
    other = await world.user_in_voice("Elsewhere", elsewhere)
    wrong_room = await world.run(other, "skip")  # no bot plays in their channel
    assert wrong_room.ephemeral and "Nothing is playing" in wrong_room.text


async def test_missing_voice_permission_is_explained(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    world.discord.deny_bot_permissions(world.guild.id, world.bot, world.voice_channel, 1 << 20)  # CONNECT
    answer = await world.run(user, "play", query="Song 1")
    assert answer.ephemeral and "can't connect" in answer.text


async def test_audio_backend_down_answers_clearly_and_the_bot_stays_online(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.lavalink.shutdown_node()
    await until(lambda: not world.service().nodes.healthy())
    answer = await world.run(user, "play", query="Song 1")
    assert answer.ephemeral and "audio backend is unavailable" in answer.text
    health = (await world.app.http.get("/health")).json()
    assert health["activeBots"] == 1


async def test_loop_autoplay_filter_and_queue_editing(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    for n in (1, 2, 3, 4):
        await world.run(user, "play", query=f"Song {n}")
    lavalink_player = await world.playing("Song 1")
    player = world.player()
    assert player is not None

    assert "track" in (await world.run(user, "loop", mode="track")).text
    assert player.queue.mode is wavelink.QueueMode.loop
    assert "queue" in (await world.run(user, "loop", mode="queue")).text
    assert player.queue.mode is wavelink.QueueMode.loop_all
    await world.run(user, "loop", mode="off")
    assert player.queue.mode is wavelink.QueueMode.normal

    assert "on" in (await world.run(user, "autoplay", state="on")).text
    assert player.autoplay is wavelink.AutoPlayMode.enabled
    await world.run(user, "autoplay", state="off")
    assert player.autoplay is wavelink.AutoPlayMode.partial

    assert "nightcore" in (await world.run(user, "filter", preset="nightcore")).text
    await until(lambda: bool(lavalink_player.filters.get("timescale")))
    assert lavalink_player.filters["timescale"]["speed"] == 1.2
    await world.run(user, "filter", preset="reset")
    await until(lambda: not lavalink_player.filters.get("timescale"))

    positions: dict[str, Any] = {"from": "3", "to": 1}  # "from" is a Python keyword
    assert "Moved **Song 4** to position 1" in (await world.run(user, "move", **positions)).text
    assert [t.title for t in player.queue] == ["Song 4", "Song 2", "Song 3"]
    assert "Removed **Song 2**" in (await world.run(user, "remove", positions="2")).text
    missing = await world.run(user, "remove", positions="9")
    assert missing.ephemeral and "no track at position 9" in missing.text
    assert "Shuffled 2" in (await world.run(user, "shuffle")).text
    assert "Cleared 2" in (await world.run(user, "clear")).text
    assert len(player.queue) == 0


async def test_queue_limit_and_track_length_come_from_the_bot_then_the_settings(
    make_world: WorldFactory, mongo: Any
) -> None:
    world = await make_world(music_queue_limit=2, music_max_track_seconds=600)
    world.lavalink.add_track(
        identifier="long", title="Epic", length_ms=3_600_000, uri="https://music.example/long"
    )
    user = await world.user_in_voice()
    too_long = await world.run(user, "play", query="https://music.example/long")
    assert too_long.ephemeral and "longer than the limit of 10:00" in too_long.text
    for n in (1, 2, 3):  # one playing, two queued
        await world.run(user, "play", query=f"Song {n}")
    full = await world.run(user, "play", query="Song 4")
    assert full.ephemeral and "The queue is full (2 tracks)" in full.text

    # A bot's own limits win over the settings; they apply when the bot (re)starts.
    await world.run(user, "leave")  # nothing to resume after the restart
    assert world.settings is not None
    bots = mongo[world.settings.mongodb_database]["music_bots"]
    await bots.update_one(
        {"client_id": world.bot.client_id}, {"$set": {"queue_limit": 5, "max_track_seconds": 7200}}
    )
    assert await world.app.manager.restart_bot(world.bot.client_id) == "restarted"
    await world.wait_ready()
    answer = await world.run(user, "play", query="https://music.example/long")
    assert "Epic" in answer.text and not answer.ephemeral
