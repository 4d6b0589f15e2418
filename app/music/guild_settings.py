"""Per-(bot, guild) settings with a small cache. The database blinking falls back to defaults."""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import PyMongoError

from app.db.models import GuildSettings, utcnow

_log = logging.getLogger(__name__)


class GuildSettingsStore:
    """The settings of one bot's guilds. Reads are cached; writes go through to the database."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id
        self._cache: dict[int, GuildSettings] = {}

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        try:
            found = await GuildSettings.find_one(
                GuildSettings.bot_id == self.bot_id, GuildSettings.guild_id == guild_id
            )
        except PyMongoError as exc:
            _log.warning(
                "Bot %d: guild %d settings unavailable (%s); using defaults", self.bot_id, guild_id, exc
            )
            return GuildSettings(bot_id=self.bot_id, guild_id=guild_id)
        settings = found or GuildSettings(bot_id=self.bot_id, guild_id=guild_id)
        self._cache[guild_id] = settings
        return settings

    async def update(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Upsert only the changed fields, atomically, keyed by (bot, guild)."""
        changes["updated_at"] = utcnow()
        collection = GuildSettings.get_pymongo_collection()
        await collection.update_one(
            {"bot_id": self.bot_id, "guild_id": guild_id}, {"$set": changes}, upsert=True
        )
        self._cache.pop(guild_id, None)
        return await self.get(guild_id)
