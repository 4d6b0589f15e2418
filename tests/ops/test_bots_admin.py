"""`chorus bots add|list|enable|disable|remove` end to end."""

from __future__ import annotations

import json
from typing import Any

from pymongo import AsyncMongoClient

from app.invite_urls import invite_url
from app.tokens import TokenCipher
from tests.fakes.discord import FakeDiscord
from tests.ops.conftest import Chorus, stored_bots


async def test_add_reads_the_token_from_stdin_then_list_enable_disable_remove(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bot = fake_discord.add_bot(name="Solo")

    added = await chorus("bots", "add", "Solo", "--owner-id", "42", "--check-online", stdin=bot.token + "\n")
    assert added.code == 0, added
    assert invite_url(bot.client_id) in added.stdout
    (doc,) = await stored_bots(mongo, chorus.settings)
    assert (doc["name"], doc["client_id"], doc["owner_id"], doc["enabled"]) == (
        "Solo",
        bot.client_id,
        42,
        True,
    )
    assert TokenCipher(chorus.settings.encryption_keys).decrypt(doc["token_ciphertext"]) == bot.token

    disabled = await chorus("bots", "disable", str(bot.client_id))
    assert disabled.code == 0, disabled
    listed = await chorus("bots", "list", "--json")
    assert listed.code == 0, listed
    assert json.loads(listed.stdout) == [
        {
            "name": "Solo",
            "clientId": str(bot.client_id),
            "enabled": False,
            "guilds": 0,
            "users": 0,
            "token": "primary",
            "shardCount": None,
            "inviteUrl": invite_url(bot.client_id),
        }
    ]
    enabled = await chorus("bots", "enable", str(bot.client_id))
    assert enabled.code == 0, enabled
    assert (await stored_bots(mongo, chorus.settings))[0]["enabled"] is True

    refused = await chorus("bots", "remove", str(bot.client_id))  # no terminal, no --yes
    assert refused.code == 2, refused
    assert len(await stored_bots(mongo, chorus.settings)) == 1
    removed = await chorus("bots", "remove", "--yes", str(bot.client_id))
    assert removed.code == 0, removed
    assert await stored_bots(mongo, chorus.settings) == []


async def test_add_rejects_a_bad_token_and_never_takes_one_from_argv(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bot = fake_discord.add_bot(name="Argv")
    bad = await chorus("bots", "add", "Broken", stdin="Bot " + bot.token + "\n")
    assert bad.code == 1, bad
    assert "field 'token': remove the 'Bot ' prefix" in bad.stderr
    # There is no way to pass the token as an argument: it would be visible in `ps`. It is
    # refused without being printed back (the fixture checks every run's output for tokens).
    argv = await chorus("bots", "add", "Argv", bot.token, stdin="")
    assert argv.code == 2, argv
    assert "reset it" in argv.stderr
    misplaced = await chorus("bots", "enable", "1", bot.token)
    assert misplaced.code == 2 and "[REDACTED]" in misplaced.stderr, misplaced
    seed_extra = await chorus("seed", "bots.json", bot.token)
    assert seed_extra.code == 2 and "[REDACTED]" in seed_extra.stderr, seed_extra
    for command in ("serve", "gen-key"):  # the service's own commands too
        extra = await chorus(command, bot.token)
        assert extra.code == 2 and "[REDACTED]" in extra.stderr, extra
    # Nor as the name: it would be stored in plaintext and shown by every listing.
    as_name = await chorus("bots", "add", bot.token, stdin=bot.token + "\n")
    assert as_name.code == 1 and "field 'name': looks like" in as_name.stderr, as_name
    chorus.write_seed([{"name": f"Music {bot.token}"[:80], "token": bot.token}])
    dry = await chorus("seed", "--dry-run", "bots.json")
    assert dry.code == 1 and "entry #1, field 'name'" in dry.stderr, dry
    assert await stored_bots(mongo, chorus.settings) == []
