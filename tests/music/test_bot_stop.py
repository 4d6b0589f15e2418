"""Stopping a bot stops everything it owns on the Lavalink side, even when the stop is cut short."""

from __future__ import annotations

import asyncio
import gc
import weakref

import wavelink

from app.db.models import MusicBot
from tests.music.conftest import World, WorldFactory, until


async def test_a_disabled_bot_makes_no_more_connection_attempts_and_is_collected(
    make_world: WorldFactory,
) -> None:
    world = await make_world(bots=2)
    stopped, running = world.bots
    lavalink = world.lavalink
    # Lavalink starts refusing both bots and drops them: both keep retrying in the background.
    lavalink.refused_users.update({stopped.client_id, running.client_id})
    for bot in world.bots:
        await lavalink.drop_connection(bot.client_id)
    async with asyncio.timeout(30):
        for bot in world.bots:
            await lavalink.wait_for_attempts(bot.client_id, 3)
    client = weakref.ref(world.service(stopped).client)

    record = await MusicBot.find_one(MusicBot.client_id == stopped.client_id)
    assert record is not None
    record.enabled = False
    assert await world.app.manager.sync_bot(stopped.client_id, record) == "stopped"
    attempts = lavalink.connection_attempts[stopped.client_id]

    # The running bot retries three more times (its backoff is at most 1 s here); meanwhile the
    # stopped one makes not a single attempt, and nothing of it is left running.
    async with asyncio.timeout(30):
        await lavalink.wait_for_attempts(
            running.client_id, lavalink.connection_attempts[running.client_id] + 3
        )
    assert lavalink.connection_attempts[stopped.client_id] == attempts
    gc.collect()
    assert client() is None, "the stopped bot's client is still referenced"


async def _play_in_another_guild(world: World, query: str) -> None:
    fake = world.discord
    guild = fake.add_guild(member_count=5)
    await fake.add_bot_to_guild(world.bot, guild.id)
    await until(lambda: world.service().client.get_guild(guild.id) is not None)
    listener = fake.add_user(name="Elsewhere")
    fake.add_member(guild.id, listener)
    await fake.set_user_voice(guild.id, listener.id, guild.voice_channel_id, user=listener)
    interaction = await fake.send_command(
        world.bot, guild_id=guild.id, channel_id=guild.text_channel_id, user=listener,
        name="play", options={"query": query},
    )  # fmt: skip
    await interaction.wait_for_message(lambda message: "Now playing" in message.text, timeout=10)


async def test_a_stop_cut_short_by_its_timeout_leaves_nothing_behind(make_world: WorldFactory) -> None:
    world = await make_world()
    bot_id = world.bot.client_id
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    await _play_in_another_guild(world, "Song 3")  # two players: two voice leaves to hang on
    runner = world.app.manager.get_runner(bot_id)
    assert runner is not None and runner.client is not None
    old_client = runner.client
    lavalink = world.lavalink

    lavalink.stall_rest(method="DELETE")  # leaving voice hangs on Lavalink
    try:
        await runner.stop(timeout=0.2)  # the close is abandoned in the middle
        # Nothing of the bot is registered process-wide (a later client would find its node
        # identifier taken), and its Lavalink connection is closed all the same.
        assert not [name for name in wavelink.Pool.nodes if name.startswith(f"{bot_id}:")]
        await until(lambda: lavalink.session_for_user(bot_id) is None, timeout=30)
        attempts = lavalink.connection_attempts[bot_id]

        assert await world.app.manager.restart_bot(bot_id) == "restarted"
    finally:
        lavalink.release_rest()
    await world.wait_ready()
    assert lavalink.connection_attempts[bot_id] == attempts + 1  # the new client's, only
    assert world.service().client is not old_client
    await world.playing("Song 1")  # the new client resumed what the old one saved
    assert "Song 2" in (await world.run(user, "play", query="Song 2")).text
    await until(lambda: old_client.is_closed(), timeout=30)
