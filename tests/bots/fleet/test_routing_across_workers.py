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
from beanie import init_beanie

from app.db.connection import make_client
from app.db.models import DOCUMENT_MODELS, MusicBot, ServerMusicBot, ServerStatus, VoiceAssignment
from app.music.views import search_custom_id
from app.settings import Settings
from tests.bots.fleet.workers import Fleet, Worker, eventually
from tests.database_process import DatabaseProcess
from tests.fakes.discord import FakeBot, FakeDiscord, FakeGuild
from tests.fakes.lavalink import FakeLavalink, FakePlayer
from tests.fleet import store_bot

LEASE_TTL = 6.0
SETTLE = 120.0  # generous: a loaded 2-core machine runs four Python servers here
ANSWER = 30.0


@dataclass
class World:
    discord: FakeDiscord
    lavalink: FakeLavalink
    fleet: Fleet
    bots: list[FakeBot]

    def player(self, bot: FakeBot, guild: FakeGuild) -> FakePlayer | None:
        session = self.lavalink.session_for_user(bot.client_id)
        return None if session is None else session.players.get(guild.id)

    def title(self, bot: FakeBot, guild: FakeGuild) -> str | None:
        player = self.player(bot, guild)
        return None if player is None or player.track is None else player.track["info"]["title"]


@pytest.fixture
async def world(tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any) -> AsyncIterator[World]:
    database = DatabaseProcess(tmp_path / "db")
    database.start()
    settings: Settings = make_settings(mongodb_url=database.url)
    observer = make_client(database.url)
    lavalink = FakeLavalink(autoclock=True)
    fleet = Fleet(tmp_path, {})
    try:
        await init_beanie(database=observer[settings.mongodb_database], document_models=DOCUMENT_MODELS)
        await lavalink.start()
        for n in range(1, 6):
            lavalink.add_track(identifier=f"t{n}", title=f"Song {n}", length_ms=3_600_000,
                               uri=f"https://music.example/t{n}")  # fmt: skip
        lobby = fake_discord.add_guild(member_count=5)
        bots = [fake_discord.add_bot(name=f"Chorus {n}") for n in range(1, 5)]
        for bot in bots:
            await fake_discord.add_bot_to_guild(bot, lobby.id)
            await store_bot(observer, settings, bot)
        assert settings.mongodb_url is not None
        fleet.env = {
            "MONGODB_URL": settings.mongodb_url.get_secret_value(),
            "MONGODB_DATABASE": settings.mongodb_database,
            "TOKEN_ENCRYPTION_KEYS": settings.encryption_keys[0],
            "DISCORD_API_BASE": fake_discord.api_base,
            "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
            "LAVALINK_NODES": f"main={lavalink.uri}={lavalink.password}",
            "LEASE_TTL": str(LEASE_TTL),
            "GUILD_READY_TIMEOUT": "0.1",
            "IDENTIFY_INTERVAL": "0",
            "BOT_RETRY_INITIAL_DELAY": "0.2",
            "BOT_RETRY_MAX_DELAY": "2",
            "LAVALINK_HEALTH_INTERVAL": "0.5",
            "LOG_LEVEL": "INFO",
        }
        yield World(fake_discord, lavalink, fleet, bots)
    except BaseException:
        print(fleet.logs())  # shown by pytest with the failure
        raise
    finally:
        await fleet.close()
        await lavalink.close()
        database.kill()
        await observer.close()
    logs = fleet.log_text()
    assert "Traceback" not in logs, fleet.logs()


async def split_over_workers(world: World) -> dict[int, Worker]:
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


async def guild_with(world: World, bots: list[FakeBot]) -> FakeGuild:
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


async def bots_in(world: World, guild: FakeGuild, channel_id: int) -> set[int]:
    return world.discord.users_in_voice(guild.id, channel_id) & {b.client_id for b in world.bots}


@pytest.mark.timeout(600)
async def test_play_and_skip_received_on_one_worker_act_on_a_bot_of_the_other(world: World) -> None:
    discord = world.discord
    owners = await split_over_workers(world)
    a = world.bots[0]
    (b,) = [bot for bot in world.bots[1:] if owners[bot.client_id] is not owners[a.client_id]][:1]
    guild = await guild_with(world, [a, b])
    room_1 = guild.voice_channel_id
    room_2 = discord.add_voice_channel(guild.id, "Room 2")
    first, second = discord.add_user(name="First"), discord.add_user(name="Second")
    for user, room in ((first, room_1), (second, room_2)):
        discord.add_member(guild.id, user)
        await discord.set_user_voice(guild.id, user.id, room, user=user)

    # A is free: it plays for the first caller itself.
    here = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id, user=first,
                                      name="play", options={"query": "Song 1"})  # fmt: skip
    assert "Song 1" in (await here.wait_for_message(timeout=ANSWER)).text
    await eventually(lambda: world.title(a, guild) == "Song 1", timeout=ANSWER, what="A playing Song 1")

    # A is busy in Room 1: the second caller's /play, received by A, is played by B, whose worker
    # answers the interaction sent to A's application.
    forwarded = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id,
                                           user=second, name="play", options={"query": "Song 2"})  # fmt: skip
    answer = await forwarded.wait_for_message(timeout=ANSWER)
    assert "Song 2" in answer.text and b.name in answer.text, answer.text
    assert forwarded.response_type in (4, 5) and len(forwarded.responses) == 1
    await eventually(lambda: world.title(b, guild) == "Song 2", timeout=ANSWER, what="B playing Song 2")
    assert await bots_in(world, guild, room_2) == {b.client_id}
    assert world.title(a, guild) == "Song 1"

    # Queued on B through A as well, then skipped through A: B moves on to it.
    queued = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id,
                                        user=second, name="play", options={"query": "Song 3"})  # fmt: skip
    assert "Song 3" in (await queued.wait_for_message(timeout=ANSWER)).text
    skipped = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id,
                                         user=second, name="skip")  # fmt: skip
    text = (await skipped.wait_for_message(timeout=ANSWER)).text
    assert b.name in text, text
    await eventually(lambda: world.title(b, guild) == "Song 3", timeout=ANSWER, what="B skipping to Song 3")
    assert world.title(a, guild) == "Song 1"  # A's own player was not touched

    # /search through A: B's worker answers with the results, so B's client holds the menu; the
    # pick goes to A's application again and, its custom id naming B, on to B's worker.
    search = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id,
                                        user=second, name="search", options={"query": "Song 4"})  # fmt: skip
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
    frozen = owners[b.client_id]
    frozen.signal(signal.SIGSTOP)
    try:
        unanswered = await discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id,
                                                user=second, name="skip")  # fmt: skip
        message = await unanswered.wait_for_message(timeout=ANSWER)
        assert "not responding" in message.text and unanswered.ephemeral, message.text
        assert len(unanswered.responses) == 1
    finally:
        frozen.signal(signal.SIGCONT)
    assert world.title(b, guild) == "Song 3"


@pytest.mark.timeout(600)
async def test_two_plays_racing_for_one_channel_through_two_workers_end_with_one_bot(world: World) -> None:
    discord = world.discord
    owners = await split_over_workers(world)
    a = world.bots[0]
    (b,) = [bot for bot in world.bots[1:] if owners[bot.client_id] is not owners[a.client_id]][:1]
    guild = await guild_with(world, [a, b])
    room = guild.voice_channel_id
    first, second = discord.add_user(name="First"), discord.add_user(name="Second")
    for user in (first, second):
        discord.add_member(guild.id, user)
        await discord.set_user_voice(guild.id, user.id, room, user=user)

    # Both bots are free and each receives a /play for the same channel at the same moment, on
    # its own worker: each would pick itself; the unique (guild, channel) assignment lets one.
    sent = await asyncio.gather(
        discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id, user=first,
                             name="play", options={"query": "Song 4"}),
        discord.send_command(b, guild_id=guild.id, channel_id=guild.text_channel_id, user=second,
                             name="play", options={"query": "Song 5"}),
    )  # fmt: skip
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
    assert world.player(loser, guild) is None or world.player(loser, guild).track is None  # type: ignore[union-attr]
    # Nobody else ever joined: the fake saw one bot in the channel throughout.
    assert await bots_in(world, guild, room) == {winner.client_id}


@pytest.mark.timeout(600)
async def test_a_play_that_loses_the_race_after_deferring_is_answered_by_the_winner(world: World) -> None:
    """Both searches are slow, so both receiving bots defer before they race for the channel: the
    loser's interaction goes over as deferred, and the winner's worker fills in its placeholder."""
    discord = world.discord
    owners = await split_over_workers(world)
    a = world.bots[0]
    (b,) = [bot for bot in world.bots[1:] if owners[bot.client_id] is not owners[a.client_id]][:1]
    guild = await guild_with(world, [a, b])
    room = guild.voice_channel_id
    first, second = discord.add_user(name="First"), discord.add_user(name="Second")
    for user in (first, second):
        discord.add_member(guild.id, user)
        await discord.set_user_voice(guild.id, user.id, room, user=user)

    world.lavalink.stall_rest(method="GET")  # searches hang until both answers are deferred
    try:
        sent = await asyncio.gather(
            discord.send_command(a, guild_id=guild.id, channel_id=guild.text_channel_id, user=first,
                                 name="play", options={"query": "Song 4"}),
            discord.send_command(b, guild_id=guild.id, channel_id=guild.text_channel_id, user=second,
                                 name="play", options={"query": "Song 5"}),
        )  # fmt: skip
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
