"""The baseline: one minimal discord.py + wavelink music bot per process, as people run them today.

    BOT_TOKEN=... READY_FILE=/tmp/x python benchmarks/single_bot.py

A stock ``commands.Bot`` with the ``guilds`` and ``voice_states`` intents and discord.py's
default caches, which imports wavelink (as every such music bot does) and connects. The only
additions are for the benchmark: ``DISCORD_API_BASE``/``DISCORD_GATEWAY_URL`` point it at the
fake Discord, ``GUILD_READY_TIMEOUT`` (default: discord.py's 2 s) is passed through, and
``on_ready`` writes the monotonic clock to ``READY_FILE`` (the harness reads it: the clock is
system-wide, so the harness can compare it with its own start time). SIGTERM closes the bot.

It does not connect to Lavalink, and neither does the fleet in this benchmark: both sides carry
the same (not yet used) wavelink import.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import discord
import discord.gateway
import discord.http
import wavelink  # noqa: F401  # a music bot imports its Lavalink client: part of its cost
import yarl
from discord.ext import commands


def make_bot(guild_ready_timeout: float) -> commands.Bot:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=guild_ready_timeout)


def mark_ready(path: str) -> None:
    """Write the monotonic clock (system-wide on Linux) atomically: the harness polls for the file."""
    with open(path + ".partial", "w", encoding="ascii") as handle:
        handle.write(repr(time.monotonic()))
    os.replace(path + ".partial", path)


async def run_bot() -> None:
    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"].rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    ready_file = os.environ.get("READY_FILE")
    bot = make_bot(float(os.environ.get("GUILD_READY_TIMEOUT", "2")))

    @bot.event
    async def on_ready() -> None:
        if ready_file:
            mark_ready(ready_file)

    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[None]] = set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: closing.add(asyncio.create_task(bot.close())))
    async with bot:
        await bot.start(os.environ["BOT_TOKEN"])


if __name__ == "__main__":
    asyncio.run(run_bot())
