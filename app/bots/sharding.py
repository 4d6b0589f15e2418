"""How many gateway connections (shards) a bot runs.

Discord lets one gateway session hold a limited number of guilds (2,500); a bot past it must
shard, or its IDENTIFY is closed with 4011. Almost every bot of a music fleet is far below it
(unverified bots stop at 100 guilds), so a bot runs discord.py's plain client, whose start-up
never asks Discord anything about shards. It runs the `AutoShardedClient` instead when:

* its record sets `shard_count` (the operator's override: used as is; 1 forces the plain client);
* Discord closed its last IDENTIFY with 4011: the next client is sharded, with the count that
  `GET /gateway/bot` recommends (discord.py asks when it connects). A sharded bot that outgrows
  its shards gets 4011 again on a shard's next IDENTIFY and is resharded the same way, as long
  as Discord recommends more shards than were refused;
* its recorded guild count reached `SHARD_CHECK_GUILDS`: before connecting it asks
  `GET /gateway/bot` and shards when Discord recommends more than one shard.

All of a bot's shards run in the process that runs the bot: the unit a worker owns stays the bot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.db.models import MusicBot
from app.discord_rest import DiscordRestError, logged_in

__all__ = ("PLAIN", "ShardPlan", "ShardPlanner")

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """What a bot's next client is: the plain one, or sharded with `count` shards (None: as many
    as Discord recommends, asked by discord.py when it connects)."""

    sharded: bool
    count: int | None = None


PLAIN = ShardPlan(sharded=False)


class ShardPlanner:
    """Decides, before each fresh client of one bot, whether and how it shards."""

    def __init__(self, client_id: int, *, check_guilds: int) -> None:
        self.client_id = client_id
        self._check_guilds = check_guilds
        # A close 4011 said one connection is not enough; kept for the life of the runner.
        self.required = False
        self._refused_with = 0  # the most shards a client had when Discord answered 4011

    async def plan(self, record: MusicBot, token: str) -> ShardPlan:
        if record.shard_count is not None:
            return ShardPlan(sharded=True, count=record.shard_count) if record.shard_count > 1 else PLAIN
        if self.required:
            return ShardPlan(sharded=True)
        if record.guild_count < self._check_guilds:
            return PLAIN
        try:
            async with logged_in(token, expected_client_id=self.client_id) as rest:
                recommended = await rest.recommended_shards()
        except DiscordRestError as exc:
            # The login that follows meets the same problem and reports it; a 4011 still shards.
            _log.warning("Bot %d: could not ask Discord how many shards it needs (%s)", self.client_id, exc)
            return PLAIN
        _log.info("Bot %d (%d guilds): Discord recommends %d shard(s)",
                  self.client_id, record.guild_count, recommended)  # fmt: skip
        return ShardPlan(sharded=True, count=recommended) if recommended > 1 else PLAIN

    def sharding_required(self, record: MusicBot, shards: int) -> bool:
        """Discord closed an IDENTIFY of a client with `shards` connections with 4011. Returns
        whether the next client should shard as Discord recommends: not when the operator's
        `shard_count` decided (that is what must change), nor when Discord's recommendation was
        already refused with as many shards (it would only be refused again)."""
        if record.shard_count is not None or shards <= self._refused_with:
            return False
        self._refused_with = shards
        self.required = True
        return True
