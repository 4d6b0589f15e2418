"""The application-command set of every bot, in one place.

`EXTENSIONS` is loaded into each bot in `setup_hook`; `command_payloads()` builds the same
set for deploy/clear-commands (REST bulk overwrite) without logging any bot in.
"""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

# Every feature cog, loaded in this order by each bot.
EXTENSIONS: tuple[str, ...] = (
    "app.music.cogs.playback",
    "app.music.cogs.queue",
    "app.music.cogs.settings",
    "app.music.cogs.fleet",
    "app.music.cogs.clone",
)


async def load_extensions(bot: commands.Bot) -> None:
    for extension in EXTENSIONS:
        await bot.load_extension(extension)


async def command_payloads() -> list[dict[str, Any]]:
    """The JSON Discord expects in a bulk overwrite: exactly what the bots register."""
    bot = commands.Bot(
        command_prefix=commands.when_mentioned, intents=discord.Intents.none(), help_command=None
    )
    try:
        await load_extensions(bot)
        return [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    finally:
        await bot.close()
