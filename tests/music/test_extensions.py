"""Cogs are imported once per process, yet every bot owns its own cog and command objects."""

from __future__ import annotations

import discord
from discord.ext import commands

from app.bots.commands import EXTENSIONS, detached_music, load_extensions


async def test_each_bot_gets_its_own_cogs_and_commands() -> None:
    bots = [
        commands.Bot(
            command_prefix=commands.when_mentioned, intents=discord.Intents.none(), help_command=None
        )
        for _ in range(2)
    ]
    try:
        for bot in bots:
            await load_extensions(bot, music=detached_music(bot), manager=None)
        first, second = (bot.tree.get_commands() for bot in bots)
        assert [c.name for c in first] == [c.name for c in second] and len(first) >= 20
        for one, other in zip(first, second, strict=True):
            assert one is not other
            if isinstance(one, discord.app_commands.Command) and isinstance(
                other, discord.app_commands.Command
            ):
                assert one.binding is not other.binding  # each bound to its own bot's cog
        assert set(bots[0].cogs) == set(bots[1].cogs)
        assert all(bots[0].cogs[name] is not bots[1].cogs[name] for name in bots[0].cogs)
        assert len(EXTENSIONS) >= 5
    finally:
        for bot in bots:
            await bot.close()
