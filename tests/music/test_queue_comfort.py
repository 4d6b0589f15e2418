"""Search and queue comfort: cached autocomplete, queue pages, ranges, /skipto, /replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.music import search_cache
from app.music.search_cache import SearchCache, Suggestion
from tests.music.conftest import World, WorldFactory, until


async def _autocomplete(world: World, user: Any, text: str) -> list[dict[str, Any]]:
    interaction = await world.discord.send_autocomplete(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
        name="play", focused="query", options={"query": text},
    )  # fmt: skip
    await interaction.wait_for_response(timeout=30)
    return interaction.choices or []


async def test_autocomplete_offers_the_five_best_and_asks_the_node_once(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    choices = await _autocomplete(world, user, "Song")
    assert len(choices) == 5 and choices[0]["name"].startswith("Song 1")
    searches = len(world.lavalink.requests_matching("GET", "/v4/loadtracks"))
    assert await _autocomplete(world, user, "  song ") == choices  # the same query, from the cache
    assert len(world.lavalink.requests_matching("GET", "/v4/loadtracks")) == searches


async def test_a_slow_search_suggests_nothing_rather_than_too_late(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_cache, "DEADLINE", 0.05)
    cache = SearchCache()
    never = asyncio.Event()

    async def slow() -> list[Suggestion]:
        await never.wait()
        return [Suggestion("late", "late")]

    async def fast() -> list[Suggestion]:
        return [Suggestion(f"s{n}", f"v{n}") for n in range(8)]

    assert await cache.suggest("lofi", slow) == []
    assert [s.label for s in await cache.suggest("lofi", fast)] == ["s0", "s1", "s2", "s3", "s4"]


async def test_queue_pages_ranges_skipto_and_replay(make_world: WorldFactory) -> None:
    world = await make_world()
    tracks = [
        world.lavalink.add_track(identifier=f"q{n}", title=f"Track {n}", length_ms=60_000) for n in range(13)
    ]
    world.lavalink.add_playlist("https://music.example/big", "Big", tracks)
    alice = await world.user_in_voice("Alice")
    await world.run(alice, "play", query="https://music.example/big")
    lavalink_player = await world.playing("Track 0")
    player = world.player()
    assert player is not None

    queue = await world.run(alice, "queue")
    assert "Page 1/2 · 12 track(s) · 12:00 in total" in queue.text and "Alice" in queue.text

    removed = await world.run(alice, "remove", positions="2-4")
    assert "Removed 3 tracks (positions 2-4)" in removed.text
    assert [t.title for t in player.queue][:3] == ["Track 1", "Track 5", "Track 6"]
    moved: dict[str, Any] = {"from": "1-2", "to": 5}
    assert "Moved 2 tracks to position 5" in (await world.run(alice, "move", **moved)).text
    assert [t.title for t in player.queue][:6] == [
        "Track 6",
        "Track 7",
        "Track 8",
        "Track 9",
        "Track 1",
        "Track 5",
    ]
    past = await world.run(alice, "remove", positions="8-40")
    assert past.ephemeral and "no track at position 40" in past.text
    assert len(player.queue) == 9

    skipped = await world.run(alice, "skipto", position=3)
    assert "Skipped to **Track 8** (position 3)" in skipped.text
    await world.playing("Track 8")
    assert player.queue[0].title == "Track 9"

    await world.lavalink.advance(30_000)
    replayed = await world.run(alice, "replay")
    assert "Playing **Track 8** again from the start" in replayed.text
    await until(lambda: lavalink_player.position_ms == 0, timeout=30, what="back at the start")


async def test_non_djs_remove_only_their_own_tracks_in_a_range(make_world: WorldFactory) -> None:
    world = await make_world()
    alice = await world.user_in_voice("Alice")
    bob = await world.user_in_voice("Bob")
    dj_role = world.discord.add_role(world.guild.id, "DJ")
    await world.service().guild_settings.update(world.guild.id, dj_role_id=dj_role)
    for user, n in ((alice, 1), (alice, 2), (alice, 3), (bob, 4)):
        await world.run(user, "play", query=f"Song {n}")
    await world.playing("Song 1")
    refused = await world.run(alice, "remove", positions="2-3")  # Song 4 is Bob's
    assert refused.ephemeral and "Only DJs can remove other members' tracks" in refused.text
    assert "Removed **Song 2**" in (await world.run(alice, "remove", positions="1")).text
    skipto = await world.run(alice, "skipto", position=2)
    assert skipto.ephemeral and "Only DJs can skip to a later track" in skipto.text
