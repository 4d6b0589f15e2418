"""Music in a guild on shard 1 of a sharded bot: the voice join goes out on that shard, and
Lavalink gets that shard's voice session."""

from __future__ import annotations

from app.bots.client import ShardedMusicBotClient
from tests.fakes.discord import FakeDiscord, shard_of
from tests.music.conftest import WorldFactory


async def test_play_and_skip_in_a_guild_on_shard_1(
    make_world: WorldFactory, fake_discord: FakeDiscord
) -> None:
    fake_discord.max_guilds_per_shard = 2
    # Four guilds, two per shard: one connection may hold only two, so the bot must shard.
    world = await make_world(guild_shard=(1, 2), extra_guilds=[(0, 2), (0, 2), (1, 2)])
    client = world.service().client
    assert isinstance(client, ShardedMusicBotClient) and client.shard_count == 2
    assert shard_of(world.guild.id, 2) == 1
    guild = client.get_guild(world.guild.id)
    assert guild is not None and guild.shard_id == 1

    user = await world.user_in_voice("Shard one listener")
    answer = await world.run(user, "play", query="Song 1")
    assert "Now playing" in answer.text and "Song 1" in answer.text
    await world.run(user, "play", query="Song 2")
    player = await world.playing("Song 1")
    assert world.discord.voice_channel_of(world.guild.id, world.bot.client_id) == world.voice_channel
    # The voice session Lavalink plays with is the one of the shard that holds the guild.
    sessions = world.discord.shard_sessions(world.bot)
    assert player.voice["sessionId"] == sessions[1] != sessions[0]
    assert player.voice["channelId"] == str(world.voice_channel)
    assert not world.discord.misrouted_voice_updates

    assert "Skipped" in (await world.run(user, "skip")).text
    await world.playing("Song 2")
