"""`chorus deploy-commands` / `clear-commands` end to end against the fake Discord's REST API."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from app.bots.commands import command_payloads
from tests.fakes.discord import FakeBot, FakeDiscord, RecordedRequest
from tests.fleet import store_bot
from tests.ops.conftest import ROOT, Chorus


def command_puts(fake: FakeDiscord) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.method == "PUT" and r.path.endswith("/commands")]


async def add_stored_bots(
    chorus: Chorus, fake: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]], count: int
) -> list[FakeBot]:
    bots = [fake.add_bot(name=f"Deploy {n}") for n in range(1, count + 1)]
    for bot in bots:
        await store_bot(mongo, chorus.settings, bot)
    return bots


async def test_dry_run_sends_nothing_then_deploy_reaches_every_enabled_bot(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bots = await add_stored_bots(chorus, fake_discord, mongo, 3)
    disabled = fake_discord.add_bot(name="Disabled")
    await store_bot(mongo, chorus.settings, disabled, enabled=False)
    payload = await command_payloads()

    dry = await chorus("deploy-commands", "--dry-run")
    assert dry.code == 0, dry
    assert fake_discord.requests == []
    for bot in bots:
        assert f"Would PUT /applications/{bot.client_id}/commands" in dry.stdout
    assert str(disabled.client_id) not in dry.stdout
    assert json.dumps(payload, indent=2, sort_keys=True) in dry.stdout

    run = await chorus("deploy-commands")
    assert run.code == 0, run
    puts = command_puts(fake_discord)
    assert sorted((r.client_id, r.path) for r in puts) == sorted(
        (bot.client_id, f"/applications/{bot.client_id}/commands") for bot in bots
    )
    assert all(r.json == payload and r.status == 200 for r in puts)
    # The localisations go with it: Thai names and descriptions for commands and options.
    play = next(command for command in puts[0].json if command["name"] == "play")
    assert play["name_localizations"] == {"th": "เล่น"} and play["description_localizations"]["th"]
    assert play["options"][0]["name_localizations"]["th"] == "คำค้นหา"
    assert "Deployed 3 of 3 bot(s); 0 failed." in run.stdout
    assert "can take up to an hour" in run.stdout
    # REST only: the bots logged in with GET /users/@me and never opened a gateway session.
    assert all(bot.identify_count == 0 for bot in fake_discord.bots.values())
    # None of discord.py's warnings about voice packages or intents, irrelevant to REST calls.
    for noise in ("PyNaCl", "davey", "intent"):
        assert noise not in dry.stderr + run.stderr, noise
    assert {r.path for r in fake_discord.requests} <= {"/users/@me"} | {r.path for r in puts}


async def test_deploy_to_one_bot_and_to_one_bot_in_one_guild(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    target, other = await add_stored_bots(chorus, fake_discord, mongo, 2)
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(target, guild.id)
    payload = await command_payloads()

    one = await chorus("deploy-commands", str(target.client_id))
    assert one.code == 0, one
    assert [(r.client_id, r.path) for r in command_puts(fake_discord)] == [
        (target.client_id, f"/applications/{target.client_id}/commands")
    ]

    fake_discord.requests.clear()
    in_guild = await chorus(
        str(ROOT / "scripts" / "deploy_commands.py"),
        str(target.client_id),
        str(guild.id),
        program=(chorus.python,),
    )
    assert in_guild.code == 0, in_guild
    puts = command_puts(fake_discord)
    assert [(r.client_id, r.path, r.json) for r in puts] == [
        (target.client_id, f"/applications/{target.client_id}/guilds/{guild.id}/commands", payload)
    ]
    assert f"guild {guild.id}" in in_guild.stdout
    assert "can take up to an hour" not in in_guild.stdout

    # A guild the bot is not in: Discord answers 403, the command says why and fails.
    fake_discord.requests.clear()
    elsewhere = fake_discord.add_guild()
    missing = await chorus("deploy-commands", str(other.client_id), str(elsewhere.id))
    assert missing.code == 1, missing
    assert f"403 Forbidden in guild {elsewhere.id}" in missing.stdout
    assert "not in that guild" in missing.stdout

    unknown = await chorus("deploy-commands", "999999999999999999")
    assert unknown.code == 2, unknown
    assert "no stored bot has client id 999999999999999999" in unknown.stderr


async def test_a_429_is_waited_out_and_retried(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    (bot,) = await add_stored_bots(chorus, fake_discord, mongo, 1)
    fake_discord.fail_next_with_429("/commands", times=2, retry_after=0.3, method="PUT")

    run = await chorus("deploy-commands")

    assert run.code == 0, run
    assert [(r.client_id, r.status) for r in command_puts(fake_discord)] == [
        (bot.client_id, 429),
        (bot.client_id, 429),
        (bot.client_id, 200),
    ]
    assert "Deployed 1 of 1 bot(s); 0 failed." in run.stdout
    assert "rate limited" in run.stderr  # discord.py logs each wait


async def test_a_revoked_token_fails_alone_with_a_nonzero_exit(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    first, revoked, last = await add_stored_bots(chorus, fake_discord, mongo, 3)
    await fake_discord.revoke_token(revoked)

    run = await chorus("deploy-commands")

    assert run.code == 1, run
    ok = {r.client_id for r in command_puts(fake_discord) if r.status == 200}
    assert ok == {first.client_id, last.client_id}
    rows = {line.split()[2]: line for line in run.stdout.splitlines() if line.strip().startswith("Deploy ")}
    assert "FAILED" in rows[str(revoked.client_id)]
    assert "ok:" in rows[str(first.client_id)] and "ok:" in rows[str(last.client_id)]
    assert (
        f"  - 'Deploy 2' ({revoked.client_id}, global): Discord rejected the token (401 Unauthorized)"
        in run.stdout
    )
    assert "Deployed 2 of 3 bot(s); 1 failed." in run.stdout


async def _put_commands(fake: FakeDiscord, bot: FakeBot, guild_id: int | None = None) -> None:
    path = f"/applications/{bot.client_id}" + (f"/guilds/{guild_id}" if guild_id else "") + "/commands"
    commands = [{"name": "play", "description": "Play a song", "type": 1}]
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {bot.token}"}
        async with http.put(fake.api_base + path, json=commands, headers=headers) as response:
            assert response.status == 200


async def test_clear_commands_removes_exactly_the_intended_commands(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    one, two = await add_stored_bots(chorus, fake_discord, mongo, 2)
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(one, guild.id)
    for bot in (one, two):
        await _put_commands(fake_discord, bot)
    await _put_commands(fake_discord, one, guild.id)

    in_guild = await chorus("clear-commands", str(one.client_id), str(guild.id))
    assert in_guild.code == 0, in_guild
    assert fake_discord.get_commands(one.client_id, guild.id) == []
    assert len(fake_discord.get_commands(one.client_id)) == 1  # its global commands are untouched

    everywhere = await chorus(str(ROOT / "scripts" / "clear_commands.py"), program=(chorus.python,))
    assert everywhere.code == 0, everywhere
    assert fake_discord.get_commands(one.client_id) == fake_discord.get_commands(two.client_id) == []
    assert "Cleared 2 of 2 bot(s); 0 failed." in everywhere.stdout
    for noise in ("PyNaCl", "davey", "intent"):
        assert noise not in in_guild.stderr + everywhere.stderr, noise
