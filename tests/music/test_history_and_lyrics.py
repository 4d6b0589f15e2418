"""/history, /previous (kept across a restart) and /lyrics through the LavaLyrics routes."""

from __future__ import annotations

from app.music.player import HISTORY_SIZE
from tests.music.conftest import World, WorldFactory, until


async def _play_through(world: World, user: object, titles: list[str]) -> None:
    for title in titles[:-1]:
        await world.playing(title)
        await world.lavalink.finish_track(world.guild.id)
    await world.playing(titles[-1])


async def test_history_pages_previous_and_the_restart(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    for n in (1, 2, 3, 4):
        await world.run(user, "play", query=f"Song {n}")
    await _play_through(world, user, ["Song 1", "Song 2", "Song 3"])

    history = await world.run(user, "history")
    text = history.text
    assert text.index("Song 3") < text.index("Song 2") < text.index("Song 1")  # the newest first
    assert "Song 4" not in text

    back = await world.run(user, "previous")
    assert "Back to **Song 2**" in back.text
    await world.playing("Song 2")
    player = world.player()
    assert player is not None and [t.title for t in player.queue] == ["Song 3", "Song 4"]

    await world.restart()
    await world.playing("Song 2")
    player = world.player()
    assert player is not None
    assert [t.title for t in player.history] == ["Song 1", "Song 2"]
    again = await world.run(user, "previous")
    assert "Back to **Song 1**" in again.text
    await world.playing("Song 1")


async def test_history_keeps_the_last_fifty_and_previous_needs_one(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    nothing = await world.run(user, "previous")
    assert nothing.ephemeral and "no previous track" in nothing.text
    player = world.player()
    assert player is not None
    assert player.history.maxlen == HISTORY_SIZE == 50


async def test_lyrics_of_the_current_track_and_of_a_query(make_world: WorldFactory) -> None:
    world = await make_world(lavalink_options={"lyrics_plugin": True})
    world.lavalink.add_lyrics("t1", lines=[f"line {n} of song one" for n in range(300)])
    world.lavalink.add_lyrics("t2", text="Only words of song two")
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")

    lyrics = await world.run(user, "lyrics")
    message = lyrics.messages[0]
    assert "Lyrics: Song 1" in message.text and "line 0 of song one" in message.text
    assert "Page 1/" in message.text and "LRCLIB" in message.text
    assert "line 299" not in message.text
    assert world.lavalink.requests_matching("GET", "/track/lyrics")  # the session/player route
    click = await world.discord.click_button(world.bot, message, "lyrics:next", user=user)
    await click.wait_for_response(timeout=30)
    await until(lambda: "Page 2/" in message.text, timeout=30, what="the next lyrics page")

    other = await world.run(user, "lyrics", query="Song 2")
    assert "Only words of song two" in other.text
    assert world.lavalink.requests_matching("GET", "/v4/lyrics")
    none = await world.run(user, "lyrics", query="Song 3")
    assert "No lyrics found for **Song 3**" in none.text


async def test_a_server_without_the_plugin_says_so(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    answer = await world.run(user, "lyrics")
    assert answer.ephemeral and "Lyrics are not available on this server" in answer.text
    by_name = await world.run(user, "lyrics", query="Song 2")
    assert by_name.ephemeral and "not available on this server" in by_name.text
