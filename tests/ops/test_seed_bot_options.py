"""Seed files carry the per-bot options: can_clone and the limits that override the settings."""

from __future__ import annotations

import json
from typing import Any

from pymongo import AsyncMongoClient

from tests.fakes.discord import FakeDiscord
from tests.ops.conftest import Chorus, stored_bots


async def test_per_bot_options_are_stored_changed_and_validated(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bot = fake_discord.add_bot(name="Cloner")
    entry: dict[str, Any] = {"name": "Cloner", "token": bot.token, "can_clone": True, "queue_limit": 50,
                             "max_track_seconds": 1200, "guild_cap": 75, "shard_count": 3}  # fmt: skip
    created = await chorus("seed", str(chorus.write_seed([entry])))
    assert created.code == 0, created
    (stored,) = await stored_bots(mongo, chorus.settings)
    assert (stored["can_clone"], stored["queue_limit"], stored["max_track_seconds"], stored["guild_cap"],
            stored["shard_count"]) == (True, 50, 1200, 75, 3)  # fmt: skip
    # `chorus bots list` shows the shard override (the table's Shards column, and --json).
    listed = await chorus("bots", "list", "--json")
    assert listed.code == 0 and json.loads(listed.stdout)[0]["shardCount"] == 3, listed
    table = await chorus("bots", "list")
    assert table.code == 0 and "Shards" in table.stdout, table
    row = next(line for line in table.stdout.splitlines() if str(bot.client_id) in line)
    assert " 3 " in row, table.stdout

    # null falls back to the service's settings; unchanged fields stay as stored; seeding is idempotent.
    entry.update(queue_limit=None, can_clone=False, shard_count=None)
    changed = await chorus("seed", str(chorus.write_seed([entry])))
    assert changed.code == 0, changed
    (stored,) = await stored_bots(mongo, chorus.settings)
    assert (stored["can_clone"], stored["queue_limit"], stored["guild_cap"]) == (False, None, 75)
    assert stored["shard_count"] is None
    assert "auto" in (await chorus("bots", "list")).stdout
    again = await chorus("seed", str(chorus.write_seed([entry])))
    assert again.code == 0 and (await stored_bots(mongo, chorus.settings)) == [stored]

    bad = {"name": "Cloner", "token": bot.token, "can_clone": "yes", "guild_cap": 0, "queue_limit": 2.5,
           "shard_count": 0}  # fmt: skip
    rejected = await chorus("seed", str(chorus.write_seed([bad])))
    assert rejected.code != 0
    output = rejected.stdout + rejected.stderr
    for field in ("can_clone", "guild_cap", "queue_limit", "shard_count"):
        assert f"'{field}'" in output, output
    assert (await stored_bots(mongo, chorus.settings)) == [stored]  # nothing written
