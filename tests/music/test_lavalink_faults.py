"""Lavalink's faults stay in the music: a node that is down, a server's quirks, a dropped request."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from app.bots.status import BotState
from tests.music.conftest import World, WorldFactory, until

NODES_LOG = "app.music.nodes"


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


async def test_lavalink_down_never_gates_discord_and_nodes_connect_when_it_comes_up(
    make_world: WorldFactory,
) -> None:
    # Four bots, two logins at a time, and nothing listening on Lavalink's port yet.
    world: World = await make_world(bots=4, lavalink_up=False, bot_login_concurrency=2)
    assert all(world.service(bot).nodes.connected_count() == 0 for bot in world.bots)
    user = await world.user_in_voice()
    answer = await world.run(user, "play", query="Song 1")
    assert answer.ephemeral and "audio backend is unavailable" in answer.text

    await world.lavalink.start()
    async with asyncio.timeout(30):
        for bot in world.bots:
            await world.lavalink.wait_for_session(bot.client_id)
    await world.wait_ready()
    assert all(world.service(bot).nodes.connected_count() == 1 for bot in world.bots)
    assert all(world.service(bot).nodes.total_count() == 1 for bot in world.bots)
    played = await world.run(user, "play", query="Song 1")
    assert "Now playing" in played.text
    await world.playing("Song 1")


async def test_a_bot_retrying_on_a_fresh_client_does_not_wait_for_lavalink(make_world: WorldFactory) -> None:
    world = await make_world(lavalink_up=False)
    runner = world.app.manager.get_runner(world.bot.client_id)
    assert runner is not None and runner.client is not None
    first = runner.client
    # A dispatch discord.py cannot parse escapes its own reconnect logic: the runner starts over
    # on a fresh client, whose setup must not wait for Lavalink either.
    await world.discord.dispatch(world.bot, "GUILD_CREATE", {"id": "not-a-snowflake", "unavailable": False})
    await until(lambda: runner.client is not first, timeout=30)
    await world.app.wait_for(world.bot, BotState.READY)
    assert first.music.nodes.nodes == []  # the old client's nodes were closed with it

    await world.lavalink.start()
    await world.wait_nodes(world.bot)
    user = await world.user_in_voice()
    assert "Now playing" in (await world.run(user, "play", query="Song 2")).text


async def test_a_server_without_session_resuming_is_not_a_reconnect_loop(make_world: WorldFactory) -> None:
    # Some Lavalink-compatible servers lack PATCH /v4/sessions/{id}: wavelink's resume setup then
    # killed the node's reader on every connection.
    world = await make_world(lavalink_options={"session_patch": False})
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    await world.lavalink.advance(10_000)
    session = world.lavalink.session_for_user(world.bot.client_id)
    assert session is not None
    assert not [r for r in world.lavalink.requests_matching("PATCH") if "/players" not in r.path]
    assert world.lavalink.connection_attempts[world.bot.client_id] == 1
    assert world.service().nodes.connected_count() == 1


async def test_a_dead_websocket_reader_reconnects_with_backoff_and_logs_once(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world()
    bot_id = world.bot.client_id
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    lavalink = world.lavalink

    # From now on every track event lacks `pluginInfo`: wavelink's reader dies on each one, and
    # each reconnect re-creates the player, whose track start kills the reader again.
    lavalink.omit_plugin_info = True
    before = lavalink.connection_attempts[bot_id]
    await lavalink.finish_track(world.guild.id, user_id=bot_id)
    async with asyncio.timeout(30):
        await lavalink.wait_for_attempts(bot_id, before + 4)
    times = lavalink.handshake_times[bot_id][before:]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Backoff: 0.25-0.5 s, then 0.5-1 s (LAVALINK_RECONNECT_MAX_DELAY=1 here), never the 0.2 s
    # health interval of the old watchdog loop.
    assert gaps[-1] >= 0.5, gaps
    episode = [m for m in _warnings(caplog, NODES_LOG) if "reader died" in m]
    assert len(episode) == 1 and "KeyError" in episode[0]

    lavalink.omit_plugin_info = False
    await world.playing("Song 1")
    await world.wait_nodes(world.bot)
    recovered = [r for r in caplog.records if r.name == NODES_LOG and "connected again" in r.getMessage()]
    assert len(recovered) == 1  # once per episode, however often it flapped
    assert "Task exception was never retrieved" not in caplog.text


async def test_a_connection_drop_during_play_answers_audio_backend_unavailable(
    make_world: WorldFactory,
) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    world.lavalink.drop_next_play(user_id=world.bot.client_id)
    answer = await world.run(user, "play", query="Song 1")
    assert answer.ephemeral and "audio backend is unavailable" in answer.text
    player = world.player()
    assert player is not None and player.current is None and [t.title for t in player.queue] == ["Song 1"]

    # Nothing was lost: the next /play starts the track that could not start, then queues its own.
    again = await world.run(user, "play", query="Song 2")
    assert "Song 2" in again.text and "position 1" in again.text
    await world.playing("Song 1")
