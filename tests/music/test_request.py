"""A music command's request is resolved once, from the real discord.py interaction a bot received:
the caller, their voice channel, the bot that got the command and the bot that acts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import discord
import pytest

from app.music.access import controlled
from app.music.errors import NotInVoice
from app.music.queueing import route_play
from app.music.request import ControlRequest, MusicRequest, PlayRequest
from tests.fakes.discord import FakeBot, FakeUser
from tests.music.conftest import World, WorldFactory


async def _received(
    world: World, bot: FakeBot, user: FakeUser, name: str, **options: Any
) -> discord.Interaction:
    """Run a command and return the `discord.Interaction` the bot's client built for it."""
    runner = world.app.manager.get_runner(bot.client_id)
    assert runner is not None and runner.client is not None
    client = runner.client
    seen: asyncio.Future[discord.Interaction] = asyncio.get_running_loop().create_future()

    async def on_interaction(interaction: discord.Interaction) -> None:
        if not seen.done() and interaction.user.id == user.id:
            seen.set_result(interaction)

    client.add_listener(on_interaction, "on_interaction")
    try:
        await world.run(user, name, bot=bot, **options)
        return await asyncio.wait_for(seen, 30)
    finally:
        client.remove_listener(on_interaction, "on_interaction")


async def test_a_request_names_the_caller_the_receiving_and_the_acting_bot(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    bot_a, bot_b = world.bots
    alice = await world.user_in_voice("Alice")
    first = await world.run(alice, "play", bot=bot_b, query="Song 1")
    assert "Chorus 2" in first.text  # bot B plays in the channel
    bob = await world.user_in_voice("Bob")

    # Bob's /queue reached bot A; the player of his channel is bot B's.
    interaction = await _received(world, bot_a, bob, "queue")
    receiving, acting = world.service(bot_a), world.service(bot_b)
    control = controlled(receiving, interaction)
    assert isinstance(control, ControlRequest)
    assert control.receiving is receiving and control.acting is acting
    assert control.player is acting.get_player(world.guild.id)
    assert control.member.id == bob.id and control.channel.id == world.voice_channel

    # What another worker would need: plain ids only, JSON as they are.
    ids = control.ids()
    assert ids == {
        "guild_id": world.guild.id,
        "channel_id": world.voice_channel,
        "user_id": bob.id,
        "text_channel_id": world.text_channel,
        "application_id": bot_a.client_id,
        "receiving_bot_id": bot_a.client_id,
        "language": "en",
        "acting_bot_id": bot_b.client_id,
    }
    assert json.loads(json.dumps(ids)) == ids
    assert "interaction=" not in repr(control) and "player=" not in repr(control)  # live objects stay out

    # /play from the same caller is routed to the bot already in the channel (rule 1).
    routed = await route_play(receiving, interaction)
    assert isinstance(routed, PlayRequest)
    assert routed.acting is acting and routed.ids() == ids

    # Answers name the bot that acted, in the caller's language.
    assert control.t.language == "en"


async def test_a_caller_outside_voice_is_told_so_before_anything_else(make_world: WorldFactory) -> None:
    world = await make_world()
    carol = world.discord.add_user(name="Carol")
    world.discord.add_member(world.guild.id, carol)
    interaction = await _received(world, world.bot, carol, "queue")
    assert interaction.extras  # the tree ran (and resolved the language) before the command
    with pytest.raises(NotInVoice):
        MusicRequest.of(world.service(), interaction)
    with pytest.raises(NotInVoice):
        await route_play(world.service(), interaction)
