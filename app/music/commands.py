"""The music commands of every bot, in one place.

`MUSIC_EXTENSIONS` are loaded into each bot by the fleet (`app/bots/commands.py` adds the
fleet's own commands to them). Each module ends in `setup(bot, music)`: the cogs are built with
the bot's `MusicService`, so they never look it up on the client.
"""

from __future__ import annotations

import importlib

from discord.ext import commands

from app.music.controller import ControllerButton
from app.music.service import MusicService

# Every music cog, loaded in this order by each bot.
MUSIC_EXTENSIONS: tuple[str, ...] = (
    "app.music.cogs.playback",
    "app.music.cogs.queue",
    "app.music.cogs.history",
    "app.music.cogs.playlists",
    "app.music.cogs.settings",
)


async def load_music_extensions(bot: commands.Bot, music: MusicService) -> None:
    """Add every music feature to `bot` by calling each module's `setup(bot, music)`.

    Not `bot.load_extension`: that executes each module again for every bot (about 17 ms of CPU
    and half a MiB per bot, measured in docs/PERFORMANCE.md). The modules are imported once per
    process; each bot still gets its own cog instances and command objects from `setup`.
    """
    for extension in MUSIC_EXTENSIONS:
        module = importlib.import_module(extension)
        await module.setup(bot, music)
    # The controller's persistent buttons: any press of one, after any restart, reaches the bot.
    bot.add_dynamic_items(ControllerButton)
