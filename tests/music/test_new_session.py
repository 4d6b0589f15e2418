"""A Discord session that cannot be resumed (op 9 `d: false`, close 4009) keeps the music playing.

discord.py identifies again inside the same client and clears its voice clients, while Lavalink
keeps playing: the players must stay the bot's, with their queues, and renew their voice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from app.db.models import PlayerSnapshot
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.music.conftest import WorldFactory, until


async def _op9(discord: FakeDiscord, bot: FakeBot) -> None:
    await discord.invalidate_session(bot)


async def _close_4009(discord: FakeDiscord, bot: FakeBot) -> None:
    await discord.disconnect(bot, code=4009)


@pytest.mark.parametrize("end_session", [_op9, _close_4009], ids=["op9", "close4009"])
async def test_players_and_queues_survive_a_new_discord_session(
    make_world: WorldFactory, end_session: Callable[[FakeDiscord, FakeBot], Awaitable[None]]
) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    for n in (1, 2, 3):
        await world.run(user, "play", query=f"Song {n}")
    lavalink_player = await world.playing("Song 1")
    player = world.player()
    assert player is not None
    identifies = world.bot.identify_count

    await end_session(world.discord, world.bot)
    await world.discord.wait_for_identify(world.bot, identifies + 1, timeout=30)
    # The player renews its voice on the new gateway session, and Lavalink gets it.
    await until(lambda: lavalink_player.voice.get("sessionId") in world.bot.sessions, timeout=30)
    assert world.discord.voice_channel_of(world.guild.id, world.bot.client_id) == world.voice_channel
    assert world.player() is player and lavalink_player.track is not None

    queue = await world.run(user, "queue")
    assert "Song 2" in queue.text and "Song 3" in queue.text
    assert "Paused" in (await world.run(user, "pause")).text
    await until(lambda: lavalink_player.paused)
    assert "Resumed" in (await world.run(user, "resume")).text
    assert "Skipped **Song 1**" in (await world.run(user, "skip")).text
    await world.playing("Song 2")
    # One player, one queue: a new /play adds to it instead of building a second player.
    assert "position 2" in (await world.run(user, "play", query="Song 4")).text
    assert world.player() is player and [t.title for t in player.queue] == ["Song 3", "Song 4"]

    # Nothing still playing is pruned from the saved players.
    await world.service().snapshots.save_all()
    saved = await PlayerSnapshot.find(PlayerSnapshot.bot_id == world.bot.client_id).to_list()
    assert [s.guild_id for s in saved] == [world.guild.id]
