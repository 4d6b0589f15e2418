"""`chorus seed` end to end: idempotent upserts, every malformed case rejected with nothing written."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pymongo import AsyncMongoClient

from app.invite_urls import invite_url
from app.tokens import TokenCipher, token_fingerprint
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.fleet import store_bot
from tests.ops.conftest import ROOT, Chorus, Run, stored_bots

PERMISSIONS = "permissions=281474979875840"


def result_of(run: Run, client_id: int) -> str:
    """The Result cell of the bot's row in the seed table."""
    rows = [line for line in run.stdout.splitlines() if f" {client_id} " in line and "oauth2" not in line]
    assert len(rows) == 1, run
    return re.split(r"\s{2,}", rows[0].strip())[-1]  # rich pads cells: columns are 2+ spaces apart


async def test_seed_stores_encrypted_bots_and_running_it_again_changes_nothing(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    one, two, three = (fake_discord.add_bot(name=f"Music {n}") for n in (1, 2, 3))
    entries = [
        {"_comment": "ignored", "name": one.name, "token": one.token},
        {"name": two.name, "token": two.token, "client_id": str(two.client_id), "owner_id": 42},
        {"name": three.name, "token": three.token, "enabled": False, "dev_guild_id": "1234567890"},
    ]
    seed_file = chorus.write_seed({"_comment": ["a template comment"], "bots": entries})

    first = await chorus("seed", str(seed_file))
    assert first.code == 0, first
    assert [result_of(first, bot.client_id) for bot in (one, two, three)] == ["created"] * 3
    assert "3 created" in first.stdout
    for bot in (one, two, three):
        assert invite_url(bot.client_id) in first.stdout
    assert f"client_id={one.client_id}&scope=bot+applications.commands&{PERMISSIONS}" in first.stdout
    docs = await stored_bots(mongo, chorus.settings)
    cipher = TokenCipher(chorus.settings.encryption_keys)
    by_id = {doc["client_id"]: doc for doc in docs}
    assert set(by_id) == {one.client_id, two.client_id, three.client_id}
    for bot in (one, two, three):
        doc = by_id[bot.client_id]
        assert doc["name"] == bot.name
        assert bot.token not in json.dumps(doc, default=str)  # never stored in plaintext
        assert cipher.decrypt(doc["token_ciphertext"]) == bot.token
        assert doc["token_fingerprint"] == token_fingerprint(bot.token)
    assert by_id[two.client_id]["owner_id"] == 42
    assert by_id[three.client_id]["enabled"] is False
    assert by_id[three.client_id]["dev_guild_id"] == 1234567890

    # The same file again (through the thin script, from stdin): byte-for-byte nothing changes.
    again = await chorus(
        str(ROOT / "scripts" / "seed.py"), "-", stdin=seed_file.read_text(), program=(chorus.python,)
    )
    assert again.code == 0, again
    assert [result_of(again, bot.client_id) for bot in (one, two, three)] == ["unchanged"] * 3
    assert await stored_bots(mongo, chorus.settings) == docs

    # A regenerated token and a new name for one bot: only that bot is updated.
    new_token = make_fake_token(one.client_id)
    entries[0] = {"name": "Music One", "token": new_token}
    changed = await chorus("seed", str(chorus.write_seed(entries)))
    assert changed.code == 0, changed
    assert [result_of(changed, bot.client_id) for bot in (one, two, three)] == [
        "updated (name, token)",
        "unchanged",
        "unchanged",
    ]
    after = {doc["client_id"]: doc for doc in await stored_bots(mongo, chorus.settings)}
    assert cipher.decrypt(after[one.client_id]["token_ciphertext"]) == new_token
    assert after[one.client_id]["name"] == "Music One"
    assert after[one.client_id]["updated_at"] > by_id[one.client_id]["updated_at"]
    assert after[two.client_id] == by_id[two.client_id]
    assert new_token not in changed.stdout + changed.stderr


async def test_each_malformed_seed_names_the_problem_and_writes_nothing(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    existing = fake_discord.add_bot(name="Already stored")
    await store_bot(mongo, chorus.settings, existing)
    before = await stored_bots(mongo, chorus.settings)
    valid_bot, twin = fake_discord.add_bot(name="Valid bot"), fake_discord.add_bot(name="Original")
    valid = {"name": valid_bot.name, "token": valid_bot.token}  # each file also has a valid entry
    (chorus.cwd / "bad-json.json").write_text('{\n  "bots": [\n    {"name": "A" "token": "x"}\n  ]\n}\n')
    chorus.write_seed([valid, {"name": "No token"}], "missing-field.json")
    chorus.write_seed(
        [valid, {"name": "Original", "token": twin.token}, {"name": "Twin", "token": twin.token}],
        "duplicate-token.json",
    )
    chorus.write_seed([valid, {"name": "Broken", "token": "not-a-token"}], "bad-token-shape.json")
    expected = {
        "bad-json": "bad-json.json: 1 problem(s); nothing was written:\n"
        "  - file: invalid JSON at line 3, column 18: Expecting ',' delimiter",
        "missing-field": "entry #2 ('No token'), field 'token': missing (required)",
        "duplicate-token": "entry #3 ('Twin'), field 'token': the same token as entry #2 ('Original')",
        "bad-token-shape": "entry #2 ('Broken'), field 'token': not a Discord bot token",
    }

    # Independent runs: in parallel, to keep the suite quick.
    runs = await asyncio.gather(*(chorus("seed", f"{case}.json") for case in expected))

    for run, message in zip(runs, expected.values(), strict=True):
        assert run.code == 1, run
        assert message in run.stderr, run
        assert "nothing was written" in run.stderr
    assert await stored_bots(mongo, chorus.settings) == before


async def test_every_problem_is_reported_at_once_including_conflicts_with_the_database(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    stored = fake_discord.add_bot(name="Stored")
    await store_bot(mongo, chorus.settings, stored)
    collection = mongo[chorus.settings.mongodb_database]["music_bots"]
    # A record whose token is the one another application's entry will bring (hand-edited data).
    thief = fake_discord.add_bot(name="Thief")
    await collection.update_one(
        {"client_id": stored.client_id}, {"$set": {"token_fingerprint": token_fingerprint(thief.token)}}
    )
    before = await stored_bots(mongo, chorus.settings)
    other = fake_discord.add_bot(name="Other")
    chorus.write_seed(
        {
            "bots": [
                {"name": "Thief", "token": thief.token},
                {"name": "x" * 81, "token": other.token, "tokn": "typo", "enabled": "yes"},
                {"name": "Wrong id", "token": other.token.replace(".", "!", 1)},
                {"name": "Mismatch", "token": make_fake_token(other.client_id + 1), "client_id": 7},
                "just a string",
            ]
        }
    )
    offline = await chorus("seed", "bots.json")
    assert offline.code == 1, offline
    for expected in (
        "field 'name': must be at most 80 characters (has 81)",
        "field 'tokn': unknown field",
        "field 'enabled': must be true or false",
        "entry #3 ('Wrong id'), field 'token': not a Discord bot token",
        "entry #4 ('Mismatch'), field 'client_id': is 7, but the token belongs to application",
        "entry #5: must be an object",
    ):
        assert expected in offline.stderr, offline

    # Only the database can tell about this one: the token is stored for another application.
    chorus.write_seed([{"name": "Thief", "token": thief.token}])
    conflict = await chorus("seed", "bots.json")
    assert conflict.code == 1, conflict
    assert "entry #1 ('Thief'), field 'token': the same token is already stored for bot 'Stored'" in (
        conflict.stderr
    )
    assert await stored_bots(mongo, chorus.settings) == before


async def test_check_online_rejects_a_revoked_token_and_writes_nothing(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    good = fake_discord.add_bot(name="Good")
    revoked = fake_discord.add_bot(name="Revoked")
    await fake_discord.revoke_token(revoked)
    chorus.write_seed(
        [{"name": good.name, "token": good.token}, {"name": revoked.name, "token": revoked.token}]
    )

    rejected = await chorus("seed", "--check-online", "bots.json")
    assert rejected.code == 1, rejected
    assert (
        "entry #2 ('Revoked'), field 'token': Discord rejected the token (401 Unauthorized)"
        in rejected.stderr
    )
    assert "Good" not in rejected.stderr
    assert await stored_bots(mongo, chorus.settings) == []
    checked = {r.client_id for r in fake_discord.requests if r.path == "/users/@me" and r.status == 200}
    assert checked == {good.client_id}

    chorus.write_seed([{"name": good.name, "token": good.token}])
    dry = await chorus("seed", "--check-online", "--dry-run", "bots.json")
    assert dry.code == 0, dry
    assert "Dry run, nothing written." in dry.stdout and result_of(dry, good.client_id) == "created"
    assert await stored_bots(mongo, chorus.settings) == []
    accepted = await chorus("seed", "--check-online", "bots.json")
    assert accepted.code == 0, accepted
    assert [doc["client_id"] for doc in await stored_bots(mongo, chorus.settings)] == [good.client_id]


async def test_the_database_named_in_mongodb_url_is_the_one_written(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    bot = fake_discord.add_bot(name="URL database")
    chorus.write_seed([{"name": bot.name, "token": bot.token}])
    name = chorus.settings.mongodb_database
    url = chorus.env["MONGODB_URL"].replace("/?", f"/{name}?", 1)
    assert f"/{name}?" in url
    seeded = await chorus("seed", "bots.json", env={"MONGODB_URL": url, "MONGODB_DATABASE": ""})
    assert seeded.code == 0, seeded
    assert f"Using database '{name}' (named in MONGODB_URL)" in seeded.stderr
    assert [doc["client_id"] for doc in await mongo[name]["music_bots"].find({}).to_list()] == [bot.client_id]

    other = await chorus("bots", "list", env={"MONGODB_URL": url.replace(f"/{name}?", "/elsewhere?")})
    assert other.code == 0, other  # MONGODB_DATABASE (the fixture's) wins, and the log says so
    assert f"WARNING app.runtime: Using database '{name}' (MONGODB_DATABASE; it overrides 'elsewhere'" in (
        other.stderr
    )
    assert bot.name in other.stdout
