"""Per-(bot, guild) settings with a small cache.

Reads answer commands, so they must not outlast Discord's 3 s: each database call is bounded
(`interactive()`), and after a failure the store answers with defaults for `RETRY_AFTER`
seconds before it asks the database again (neither a 5 s wait on every command of an outage,
nor defaults cached for good)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError

from app.db.connection import interactive
from app.db.models import GuildSettings, utcnow
from app.music.errors import SettingsUnavailable

_log = logging.getLogger(__name__)

RETRY_AFTER = 10.0  # seconds of defaults after a failed read before the database is asked again


class GuildSettingsStore:
    """The settings of one bot's guilds. Reads are cached; writes go through to the database."""

    def __init__(self, bot_id: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.bot_id = bot_id
        self._cache: dict[int, GuildSettings] = {}
        self._clock = clock
        self._unavailable_until = 0.0

    @property
    def unavailable(self) -> bool:
        """The database failed us less than RETRY_AFTER ago: do not wait for it again yet."""
        return self._clock() < self._unavailable_until

    def note_failure(self, exc: PyMongoError, what: str) -> None:
        """The database failed a read or write: defaults for RETRY_AFTER (shared with the
        language store, so one outage costs one wait, not one per store)."""
        self._unavailable_until = self._clock() + RETRY_AFTER
        _log.warning("Bot %d: guild settings %s (%s); using defaults for the next %.0fs",
                     self.bot_id, what, exc, RETRY_AFTER)  # fmt: skip

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        if self.unavailable:
            return GuildSettings(bot_id=self.bot_id, guild_id=guild_id)
        try:
            with interactive():
                found = await GuildSettings.find_one(
                    GuildSettings.bot_id == self.bot_id, GuildSettings.guild_id == guild_id
                )
        except PyMongoError as exc:
            self.note_failure(exc, f"of guild {guild_id} unavailable")
            return GuildSettings(bot_id=self.bot_id, guild_id=guild_id)
        settings = found or GuildSettings(bot_id=self.bot_id, guild_id=guild_id)
        self._cache[guild_id] = settings
        return settings

    async def update(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Upsert only the changed fields, atomically, keyed by (bot, guild).

        Raises SettingsUnavailable (an answer for the user) when the database cannot take it."""
        if self.unavailable:
            raise SettingsUnavailable()
        changes["updated_at"] = utcnow()
        collection = GuildSettings.get_pymongo_collection()
        try:
            with interactive():
                await collection.update_one(
                    {"bot_id": self.bot_id, "guild_id": guild_id}, {"$set": changes}, upsert=True
                )
        except PyMongoError as exc:
            self.note_failure(exc, f"of guild {guild_id} not saved")
            raise SettingsUnavailable() from None
        self._cache.pop(guild_id, None)
        return await self.get(guild_id)
