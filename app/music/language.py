"""Which language an answer is in.

An answer follows the member's Discord language (`interaction.locale`), unless the guild chose
one for the whole network with `/settings language` (stored once per guild, not per bot). Each
bot caches that choice for `CACHE_SECONDS`, so another bot (or worker) sees a change within that
time; the bot that wrote it sees it at once. Reads are bounded like every read before an answer
(`interactive()`); during an outage the member's own language is used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import discord
from pymongo.errors import PyMongoError

from app.db import queries
from app.db.connection import interactive
from app.db.models import GuildPreferences
from app.i18n import LANGUAGES, Tr, language_of_locale
from app.music.errors import SettingsUnavailable
from app.music.guild_settings import GuildSettingsStore

CACHE_SECONDS = 60.0
_EXTRAS_KEY = "chorus_language"


class LanguageStore:
    """One bot's view of the guilds' language choices (None: follow each member's locale)."""

    def __init__(self, settings: GuildSettingsStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings  # its outage backoff is shared: one outage, one wait
        self._clock = clock
        self._cache: dict[int, tuple[float, str | None]] = {}
        self._reading: dict[int, asyncio.Future[str | None]] = {}

    async def chosen(self, guild_id: int) -> str | None:
        now = self._clock()
        cached = self._cache.get(guild_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        if self._settings.unavailable:
            return cached[1] if cached is not None else None
        # One read per guild at a time: a burst of commands arriving together (the first ones
        # after a start, or after the cache expired) shares it instead of each reading.
        reading = self._reading.get(guild_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(guild_id, now, cached))
            self._reading[guild_id] = reading
            reading.add_done_callback(lambda _: self._reading.pop(guild_id, None))
        return await asyncio.shield(reading)  # one caller cancelled leaves the read to the others

    async def _read(self, guild_id: int, now: float, cached: tuple[float, str | None] | None) -> str | None:
        try:
            with interactive():
                found = await GuildPreferences.find_one(GuildPreferences.guild_id == guild_id)
        except PyMongoError as exc:
            self._settings.note_failure(exc, f"(language) of guild {guild_id} unavailable")
            return cached[1] if cached is not None else None
        language = found.language if found is not None and found.language in LANGUAGES else None
        latest = self._cache.get(guild_id)
        if latest is not cached and latest is not None:  # `choose` wrote while this read was out
            return latest[1]
        self._cache[guild_id] = (now, language)
        return language

    async def choose(self, guild_id: int, language: str | None) -> None:
        """`/settings language`: for every bot of the network in this guild."""
        if self._settings.unavailable:
            raise SettingsUnavailable()
        try:
            with interactive():
                await queries.set_guild_language(guild_id, language)
        except PyMongoError as exc:
            self._settings.note_failure(exc, f"(language) of guild {guild_id} not saved")
            raise SettingsUnavailable() from None
        self._cache[guild_id] = (self._clock(), language)

    async def for_interaction(self, interaction: discord.Interaction) -> str:
        """The answer language of an interaction, remembered on it (see `language`)."""
        known = interaction.extras.get(_EXTRAS_KEY)
        if isinstance(known, str):
            return known
        chosen = await self.chosen(interaction.guild_id) if interaction.guild_id is not None else None
        resolved = chosen or language_of_locale(interaction.locale)
        interaction.extras[_EXTRAS_KEY] = resolved
        return resolved

    async def for_guild(self, guild: discord.Guild) -> str:
        """Messages nobody asked for (announcements, idle leaves): the guild's choice, else its
        community language."""
        return await self.chosen(guild.id) or language_of_locale(guild.preferred_locale)


def language(interaction: discord.Interaction) -> str:
    """The answer language: resolved by the command tree before the command ran, or the member's
    own (components and modals resolve theirs with `LanguageStore.for_interaction`)."""
    known = interaction.extras.get(_EXTRAS_KEY)
    return known if isinstance(known, str) else language_of_locale(interaction.locale)


def tr(interaction: discord.Interaction) -> Tr:
    return Tr(language(interaction))


async def remember_language(interaction: discord.Interaction) -> None:
    """Resolve and remember the interaction's language with its bot's store (the command tree
    calls this before every command, so commands and the error handler answer alike)."""
    music = getattr(interaction.client, "music", None)
    store = getattr(music, "languages", None)
    if isinstance(store, LanguageStore):
        await store.for_interaction(interaction)
