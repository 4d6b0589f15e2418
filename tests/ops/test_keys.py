"""`chorus rotate-key` end to end: rotation, re-runs, mixed states, tokens no key can read."""

from __future__ import annotations

import json
from typing import Any

from pymongo import AsyncMongoClient

from app.tokens import TokenCipher, generate_key
from tests.fakes.discord import FakeDiscord
from tests.fleet import store_bot
from tests.ops.conftest import Chorus, stored_bots


async def test_rotation_round_trip_then_the_old_key_can_go(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    old_key, new_key = chorus.settings.encryption_keys[0], generate_key()
    bots = [fake_discord.add_bot(name=f"Key {n}") for n in range(1, 4)]
    for bot in bots[:2]:
        await store_bot(mongo, chorus.settings, bot)
    # As if a previous run was interrupted after this bot: it is already on the new key.
    await store_bot(mongo, chorus.settings, bots[2], ciphertext=TokenCipher([new_key]).encrypt(bots[2].token))
    before = {doc["client_id"]: doc for doc in await stored_bots(mongo, chorus.settings)}
    both = {"TOKEN_ENCRYPTION_KEYS": f"{new_key},{old_key}"}

    rotated = await chorus("rotate-key", env=both)
    assert rotated.code == 0, rotated
    assert "Re-encrypted 2 token(s) with the primary key; 1 already used it." in rotated.stdout
    assert "can be removed from TOKEN_ENCRYPTION_KEYS" in rotated.stdout

    again = await chorus("rotate-key", env=both)
    assert again.code == 0, again
    assert "Re-encrypted 0 token(s) with the primary key; 3 already used it." in again.stdout

    # With the old key gone, every token still decrypts, and nothing but the ciphertext changed.
    only_new = TokenCipher([new_key])
    for doc in await stored_bots(mongo, chorus.settings):
        bot = next(b for b in bots if b.client_id == doc["client_id"])
        assert only_new.decrypt(doc["token_ciphertext"]) == bot.token
        unchanged = {k: v for k, v in before[bot.client_id].items() if k != "token_ciphertext"}
        assert {k: v for k, v in doc.items() if k != "token_ciphertext"} == unchanged
    listed = await chorus("bots", "list", "--json", env={"TOKEN_ENCRYPTION_KEYS": new_key})
    assert [bot["token"] for bot in json.loads(listed.stdout)] == ["primary"] * 3


async def test_a_token_no_key_can_read_is_named_and_fails_the_run(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    readable, lost = fake_discord.add_bot(name="Readable"), fake_discord.add_bot(name="Lost key")
    await store_bot(mongo, chorus.settings, readable)
    await store_bot(
        mongo, chorus.settings, lost, ciphertext=TokenCipher([generate_key()]).encrypt(lost.token)
    )
    new_key = generate_key()

    run = await chorus(
        "rotate-key", env={"TOKEN_ENCRYPTION_KEYS": f"{new_key},{chorus.settings.encryption_keys[0]}"}
    )

    assert run.code == 1, run
    assert f"'Lost key' ({lost.client_id})" in run.stderr
    assert "Re-encrypted 1 token(s)" in run.stdout
    doc = next(d for d in await stored_bots(mongo, chorus.settings) if d["client_id"] == readable.client_id)
    assert TokenCipher([new_key]).decrypt(doc["token_ciphertext"]) == readable.token
