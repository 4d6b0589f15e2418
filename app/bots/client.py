"""The discord.py client of one bot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import discord
from discord.ext import commands

IdentifyHook = Callable[[bool], Awaitable[None]]


def bot_intents() -> discord.Intents:
    """`guilds` and `voice_states` only: non-privileged, all a slash-command music bot needs."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return intents


class MusicBotClient(commands.Bot):
    """One bot of the fleet. Slash commands only: no message content, no member or message cache."""

    def __init__(
        self,
        *,
        client_id: int,
        name: str,
        guild_ready_timeout: float,
        identify_interval: float,
        before_identify: IdentifyHook,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=bot_intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            chunk_guilds_at_startup=False,
            guild_ready_timeout=guild_ready_timeout,
            enable_debug_events=False,
        )
        self.expected_client_id = client_id
        self.display_name = name
        self._before_identify = before_identify
        self._identify_interval = identify_interval

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Count (and possibly refuse) the IDENTIFY, then keep Discord's spacing between a bot's
        # IDENTIFYs (discord.py's default hook sleeps a fixed 5 s for every re-identify).
        await self._before_identify(initial)
        if not initial:
            await asyncio.sleep(self._identify_interval)

    @property
    def user_count(self) -> int:
        return sum(guild.member_count or 0 for guild in self.guilds)
