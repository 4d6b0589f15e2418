"""The whole application-command set of every bot: the music commands and the fleet's own.

`load_extensions` builds it into a bot; `command_payloads()` builds the same set for
deploy/clear-commands (REST bulk overwrite) without logging any bot in.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, NoReturn

import discord
from discord.ext import commands

from app.i18n import CommandTranslator
from app.music.commands import MUSIC_EXTENSIONS, load_music_extensions
from app.music.fleet import Invite
from app.music.player import ChorusPlayer
from app.music.scheduler import MusicScheduler
from app.music.service import MusicConfig, MusicService

if TYPE_CHECKING:
    from app.bots.manager import BotManager

# The fleet's cogs (/bots, /invite, /clone...): each module ends in `setup(bot, music, manager)`.
FLEET_EXTENSIONS: tuple[str, ...] = (
    "app.bots.cogs.fleet",
    "app.bots.cogs.clone",
)

EXTENSIONS: tuple[str, ...] = (*MUSIC_EXTENSIONS, *FLEET_EXTENSIONS)


async def load_extensions(bot: commands.Bot, *, music: MusicService, manager: BotManager | None) -> None:
    """Every command of a bot. `manager` is None only when building payloads (nothing runs).
    The tree's translator gives every command its Discord localisations (Thai)."""
    await bot.tree.set_translator(CommandTranslator())
    await load_music_extensions(bot, music)
    for extension in FLEET_EXTENSIONS:
        module = importlib.import_module(extension)
        await module.setup(bot, music, manager)


class _DetachedFleet:
    """The fleet of a command set built only to be serialised (deploy-commands): nothing runs,
    so nothing may ask it anything."""

    def _refuse(self) -> NoReturn:
        raise RuntimeError("a command set built for deploy-commands has no fleet")

    def bot_ids(self) -> frozenset[int]:
        self._refuse()

    def lock(self, guild_id: int) -> AbstractAsyncContextManager[object]:
        self._refuse()

    def services_in_guild(self, guild_id: int) -> list[MusicService]:
        self._refuse()

    def player_in_channel(self, guild_id: int, channel_id: int) -> ChorusPlayer | None:
        self._refuse()

    async def choose_for_play(
        self, receiving: MusicService, guild_id: int, channel_id: int
    ) -> MusicService | None:
        self._refuse()

    async def take_voice(self, service: MusicService, guild_id: int, channel_id: int) -> MusicService:
        self._refuse()

    def release_voice(self, service: MusicService, guild_id: int) -> None:
        self._refuse()

    async def clean_voice(self, service: MusicService) -> None:
        self._refuse()

    def mark_used(self, service: MusicService, guild_id: int) -> None:
        self._refuse()

    async def invite_for(self, guild_id: int) -> Invite | None:
        self._refuse()

    def lease_fenced(self, bot_id: int) -> None:
        self._refuse()


def detached_music(bot: commands.Bot) -> MusicService:
    """A music service that never starts, for a command set that is only serialised."""
    scheduler = MusicScheduler(idle_timeout=0, snapshot_interval=60)  # never started
    return MusicService(bot, MusicConfig(nodes=()), bot_id=0, fleet=_DetachedFleet(), scheduler=scheduler)


async def command_payloads() -> list[dict[str, Any]]:
    """The JSON Discord expects in a bulk overwrite: exactly what the bots register, with the
    name/description localisations `CommandTree.sync` would send."""
    # Never connected; `guilds` only so discord.py does not warn that state needs that intent.
    bot = commands.Bot(
        command_prefix=commands.when_mentioned, intents=discord.Intents(guilds=True), help_command=None
    )
    try:
        await load_extensions(bot, music=detached_music(bot), manager=None)
        translator = bot.tree.translator
        assert translator is not None, "load_extensions sets the translator"
        return [
            await command.get_translated_payload(bot.tree, translator) for command in bot.tree.get_commands()
        ]
    finally:
        await bot.close()
