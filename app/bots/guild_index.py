"""Which of our bots are members of which guild, kept from their gateway events.

Every music request asks "which of our bots are in this guild?". Scanning every runner of a
1,000-bot worker for that costs O(bots) per request; this index answers in O(bots in the guild).
The runner of each bot keeps it up to date: its guild list on READY (a new session rebuilds it),
a guild on join and availability, a guild removed on leave, everything of the bot on its stop.

The index is allowed to be late in one direction only: it may still name a bot that has just
left (readers check the live client, which already dropped the guild), never miss one that is in.
"""

from __future__ import annotations

from collections.abc import Iterable


class GuildIndex:
    """guild id → our bots (client ids) that are members of it, and the reverse."""

    def __init__(self) -> None:
        self._by_guild: dict[int, set[int]] = {}
        self._by_bot: dict[int, set[int]] = {}

    def bots_in(self, guild_id: int) -> list[int]:
        """Our bots in the guild, lowest client id first (a stable order for ties)."""
        return sorted(self._by_guild.get(guild_id, ()))

    def guilds_of(self, client_id: int) -> frozenset[int]:
        return frozenset(self._by_bot.get(client_id, ()))

    def add(self, client_id: int, guild_id: int) -> None:
        self._by_guild.setdefault(guild_id, set()).add(client_id)
        self._by_bot.setdefault(client_id, set()).add(guild_id)

    def remove(self, client_id: int, guild_id: int) -> None:
        self._discard(client_id, guild_id)
        guilds = self._by_bot.get(client_id)
        if guilds is not None:
            guilds.discard(guild_id)
            if not guilds:
                del self._by_bot[client_id]

    def replace(self, client_id: int, guild_ids: Iterable[int]) -> None:
        """The bot's whole guild list, as a new session (READY) reports it."""
        current = set(guild_ids)
        for guild_id in self._by_bot.get(client_id, set()) - current:
            self._discard(client_id, guild_id)
        for guild_id in current:
            self._by_guild.setdefault(guild_id, set()).add(client_id)
        if current:
            self._by_bot[client_id] = current
        else:
            self._by_bot.pop(client_id, None)

    def forget_bot(self, client_id: int) -> None:
        """The bot stopped (or was disabled, deleted, failed): it serves no guild here."""
        for guild_id in self._by_bot.pop(client_id, set()):
            self._discard(client_id, guild_id)

    def _discard(self, client_id: int, guild_id: int) -> None:
        bots = self._by_guild.get(guild_id)
        if bots is None:
            return
        bots.discard(client_id)
        if not bots:
            del self._by_guild[guild_id]
