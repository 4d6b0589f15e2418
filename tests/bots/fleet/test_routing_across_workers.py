"""Routing across workers: two real `chorus serve` processes on one database, one fleet.

A `/play` received by bot A on one worker is played by bot B on the other (the interaction is
forwarded through `fleet_requests` and answered by B's worker through the interaction's token);
`/skip` received by A acts on B's player; and two `/play` racing for one channel through the two
workers end with one bot in it, holding both tracks.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.db.models import MusicBot, ServerMusicBot, ServerStatus, VoiceAssignment
from app.music.views import search_custom_id
from tests.bots.fleet.workers import Stage, Worker, eventually, fleet_stage
from tests.fakes.discord import FakeBot, FakeDiscord, FakeGuild, FakeInteraction, FakeUser

LEASE_TTL = 6.0
SETTLE = 120.0  # generous: a loaded 2-core machine runs four Python servers here
ANSWER = 30.0


@pytest.fixture
async def world(tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any) -> AsyncIterator[Stage]:
    env = {"LEASE_TTL": str(LEASE_TTL)}
    async with fleet_stage(tmp_path, fake_discord, make_settings, bots=4, tracks=5, env=env) as stage:
        yield stage


async def split_over_workers(world: Stage) -> dict[int, Worker]:
    """Start two workers; once every bot is ready and each worker holds half, say who runs what."""
    workers = await world.fleet.start(2)

    async def owners() -> dict[int, Worker] | None:
        ids: dict[str, Worker] = {}
        for worker in workers:
            (me,) = [w["id"] for w in (await worker.get("/workers"))["workers"] if w["me"]]
            ids[me] = worker
        # Every worker's mirror sees every bot ready, on the same worker (what its router reads).
        views: list[dict[int, str]] = []
        for worker in workers:
            listed = (await worker.get("/bots"))["bots"]
            if len(listed) != len(world.bots) or any(b["status"] != "ready" for b in listed):
                return None
            views.append({int(b["clientId"]): b["worker"] for b in listed})
        if any(view != views[0] for view in views) or set(views[0].values()) != set(ids):
            return None
        by_bot = {bot: ids[worker_id] for bot, worker_id in views[0].items()}
        if sorted(list(by_bot.values()).count(w) for w in workers) != [2, 2]:
            return None
        return by_bot

    return await eventually(owners, timeout=SETTLE, what="the bots spread over two workers")


async def guild_with(world: Stage, bots: list[FakeBot]) -> FakeGuild:
    """A new guild with these bots in it, once their guild records say so (what the router of
    another worker reads)."""
    guild = world.discord.add_guild(member_count=5)
    for bot in bots:
        await world.discord.add_bot_to_guild(bot, guild.id)

    async def recorded() -> bool:
        records = await ServerMusicBot.find(ServerMusicBot.server_id == guild.id).to_list()
        active = {r.music_bot_id for r in records if r.status is ServerStatus.ACTIVE}
        stored = await MusicBot.find({"client_id": {"$in": [b.client_id for b in bots]}}).to_list()
        return {b.id for b in stored} <= active

    await eventually(recorded, timeout=SETTLE, what="the bots' guild records")
    return guild


async def bots_in(world: Stage, guild: FakeGuild, channel_id: int) -> set[int]:
    return world.discord.users_in_voice(guild.id, channel_id) & {b.client_id for b in world.bots}


@dataclass
class Pair:
    """Bot A and a bot B of the other worker, both in one new guild."""

    a: FakeBot
    b: FakeBot
    owners: dict[int, Worker]  # which worker runs each bot
    guild: FakeGuild


async def a_and_b_on_two_workers(world: Stage) -> Pair:
    owners = await split_over_workers(world)
    a = world.bots[0]
    (b,) = [bot for bot in world.bots[1:] if owners[bot.client_id] is not owners[a.client_id]][:1]
    return Pair(a, b, owners, await guild_with(world, [a, b]))


async def listeners(world: Stage, guild: FakeGuild, *rooms: int) -> list[FakeUser]:
    """A member of `guild` in each voice channel of `rooms`, in order."""
    users: list[FakeUser] = []
    for n, room in enumerate(rooms, 1):
        user = world.discord.add_user(name=f"Listener {n}")
        world.discord.add_member(guild.id, user)
        await world.discord.set_user_voice(guild.id, user.id, room, user=user)
        users.append(user)
    return users


async def command(
    world: Stage, bot: FakeBot, guild: FakeGuild, user: FakeUser, name: str, **options: Any
) -> FakeInteraction:
    """`user` runs `/name options...` in `guild`'s text channel, sent to `bot`'s application."""
    return await world.discord.send_command(
        bot,
        guild_id=guild.id,
        channel_id=guild.text_channel_id,
        user=user,
        name=name,
        options=options or None,
    )


async def race_plays(
    world: Stage, pair: Pair, first: FakeUser, second: FakeUser
) -> tuple[FakeInteraction, FakeInteraction]:
    """At the same moment, `first` asks A for Song 4 and `second` asks B for Song 5, each
    received on its bot's own worker."""
    return await asyncio.gather(
        command(world, pair.a, pair.guild, first, "play", query="Song 4"),
        command(world, pair.b, pair.guild, second, "play", query="Song 5"),
    )


@pytest.mark.timeout(600)
async def test_play_and_skip_received_on_one_worker_act_on_a_bot_of_the_other(world: Stage) -> None:
    discord = world.discord
    pair = await a_and_b_on_two_workers(world)
    a, b, guild = pair.a, pair.b, pair.guild
    room_1 = guild.voice_channel_id
    room_2 = discord.add_voice_channel(guild.id, "Room 2")
    first, second = await listeners(world, guild, room_1, room_2)

    # A is free: it plays for the first caller itself.
    here = await command(world, a, guild, first, "play", query="Song 1")
    assert "Song 1" in (await here.wait_for_message(timeout=ANSWER)).text
    await eventually(lambda: world.title(a, guild) == "Song 1", timeout=ANSWER, what="A playing Song 1")

    # A is busy in Room 1: the second caller's /play, received by A, is played by B, whose worker
    # answers the interaction sent to A's application.
    forwarded = await command(world, a, guild, second, "play", query="Song 2")
    answer = await forwarded.wait_for_message(timeout=ANSWER)
    assert "Song 2" in answer.text and b.name in answer.text, answer.text
    assert forwarded.response_type in (4, 5) and len(forwarded.responses) == 1
    await eventually(lambda: world.title(b, guild) == "Song 2", timeout=ANSWER, what="B playing Song 2")
    assert await bots_in(world, guild, room_2) == {b.client_id}
    assert world.title(a, guild) == "Song 1"

    # Queued on B through A as well, then skipped through A: B moves on to it.
    queued = await command(world, a, guild, second, "play", query="Song 3")
    assert "Song 3" in (await queued.wait_for_message(timeout=ANSWER)).text
    skipped = await command(world, a, guild, second, "skip")
    text = (await skipped.wait_for_message(timeout=ANSWER)).text
    assert b.name in text, text
    await eventually(lambda: world.title(b, guild) == "Song 3", timeout=ANSWER, what="B skipping to Song 3")
    assert world.title(a, guild) == "Song 1"  # A's own player was not touched

    # /search through A: B's worker answers with the results, so B's client holds the menu; the
    # pick goes to A's application again and, its custom id naming B, on to B's worker.
    search = await command(world, a, guild, second, "search", query="Song 4")
    results = await search.wait_for_message(timeout=ANSWER)
    assert "Song 4" in results.text, results.text
    pick = await discord.select(a, results, search_custom_id(b.client_id, guild.id), ["0"], user=second)
    picked = await pick.wait_for_message(lambda m: "Results" not in m.text, timeout=ANSWER)
    assert b.name in picked.text and "Song 4" in picked.text, picked.text

    # The fleet-wide routing state: one assignment per playing bot, each naming its own worker.
    rows = {(r.channel_id, r.bot_id) for r in await VoiceAssignment.find_all().to_list()}
    assert rows == {(room_1, a.client_id), (room_2, b.client_id)}
    # Never forwarded back and forth: every interaction was answered exactly once.
    for interaction in (here, forwarded, queued, skipped, search, pick):
        assert len(interaction.responses) == 1, interaction.responses

    # B's worker stops answering (frozen, not yet observed dead): nobody claims the forwarded
    # /skip, so A's worker cancels it after the claim window and answers the user itself.
    frozen = pair.owners[b.client_id]
    frozen.signal(signal.SIGSTOP)
    try:
        unanswered = await command(world, a, guild, second, "skip")
        message = await unanswered.wait_for_message(timeout=ANSWER)
        assert "not responding" in message.text and unanswered.ephemeral, message.text
        assert len(unanswered.responses) == 1
    finally:
        frozen.signal(signal.SIGCONT)
    assert world.title(b, guild) == "Song 3"


@pytest.mark.timeout(600)
async def test_two_plays_racing_for_one_channel_through_two_workers_end_with_one_bot(world: Stage) -> None:
    discord = world.discord
    pair = await a_and_b_on_two_workers(world)
    a, b, guild = pair.a, pair.b, pair.guild
    room = guild.voice_channel_id
    first, second = await listeners(world, guild, room, room)

    # Both bots are free and each receives a /play for the same channel at the same moment, on
    # its own worker: each would pick itself; the unique (guild, channel) assignment lets one.
    sent = await race_plays(world, pair, first, second)
    answers = [(await interaction.wait_for_message(timeout=ANSWER)).text for interaction in sent]
    assert "Song 4" in answers[0] and "Song 5" in answers[1], answers
    await eventually(lambda: len(discord.users_in_voice(guild.id, room) & {a.client_id, b.client_id}) == 1,
                     timeout=ANSWER, what="a bot in the channel")  # fmt: skip
    (winner,) = [bot for bot in (a, b) if bot.client_id in discord.users_in_voice(guild.id, room)]
    assert all(winner.name in text for text in answers), answers
    (row,) = await VoiceAssignment.find_all().to_list()
    assert (row.channel_id, row.bot_id) == (room, winner.client_id)
    player = world.player(winner, guild)
    assert player is not None and player.track is not None
    loser = b if winner is a else a
    assert world.title(loser, guild) is None
    # Nobody else ever joined: the fake saw one bot in the channel throughout.
    assert await bots_in(world, guild, room) == {winner.client_id}


@pytest.mark.timeout(600)
async def test_a_play_that_loses_the_race_after_deferring_is_answered_by_the_winner(world: Stage) -> None:
    """Both searches are slow, so both receiving bots defer before they race for the channel: the
    loser's interaction goes over as deferred, and the winner's worker fills in its placeholder."""
    discord = world.discord
    pair = await a_and_b_on_two_workers(world)
    a, b, guild = pair.a, pair.b, pair.guild
    room = guild.voice_channel_id
    first, second = await listeners(world, guild, room, room)

    world.lavalink.stall_rest(method="GET")  # searches hang until both answers are deferred
    try:
        sent = await race_plays(world, pair, first, second)
        for interaction in sent:
            assert (await interaction.wait_for_response(timeout=ANSWER))["type"] == 5  # deferred
    finally:
        world.lavalink.release_rest()
    answers = [(await interaction.wait_for_message(timeout=ANSWER)).text for interaction in sent]
    (winner,) = [bot for bot in (a, b) if bot.client_id in discord.users_in_voice(guild.id, room)]
    assert "Song 4" in answers[0] and "Song 5" in answers[1], answers
    assert all(winner.name in text for text in answers), answers
    assert all(len(interaction.responses) == 1 for interaction in sent)
    await eventually(lambda: world.title(winner, guild) in ("Song 4", "Song 5"), timeout=ANSWER,
                     what="the winner playing")  # fmt: skip
    assert await bots_in(world, guild, room) == {winner.client_id}
