"""`chorus rotate-key` end to end: rotation, re-runs, mixed states, tokens no key can read."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.key_file import load_or_create_keys, read_keys, write_keys
from app.ops.keys import RotationRefused, check_rotation_target, key_source
from app.settings import Settings
from app.tokens import TokenCipher, generate_key
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.fleet import store_bot
from tests.ops.conftest import CHORUS, Chorus, clean_env, stored_bots


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


async def test_bots_list_fails_when_an_enabled_bot_is_stranded(
    chorus: Chorus, fake_discord: FakeDiscord, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    fine, stranded, idle = (fake_discord.add_bot(name=n) for n in ("Fine", "Stranded", "Idle stranded"))
    await store_bot(mongo, chorus.settings, fine)
    other = TokenCipher([generate_key()])
    await store_bot(mongo, chorus.settings, idle, ciphertext=other.encrypt(idle.token), enabled=False)
    listed = await chorus("bots", "list")
    assert listed.code == 0, listed  # a disabled bot's unreadable token stops nothing
    assert "unreadable" in listed.stdout

    await store_bot(mongo, chorus.settings, stranded, ciphertext=other.encrypt(stranded.token))
    listed = await chorus("bots", "list", "--json")
    assert listed.code == 1, listed
    assert [bot["token"] for bot in json.loads(listed.stdout)] == ["primary", "unreadable", "unreadable"]
    assert f"'Stranded' ({stranded.client_id})" in listed.stderr
    assert "Idle stranded" not in listed.stderr


# -- never strand the fleet: the key the service will read -----------------------------------


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg]


def test_a_key_only_in_the_environment_must_be_in_dot_env(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    env_file = tmp_path / ".env"
    env_file.write_text(f"token_encryption_keys={old}\n")  # names are case-insensitive
    settings = _settings(tmp_path, mongodb_url="mongodb://db/", token_encryption_keys=f"{new},{old}")
    environ = {"TOKEN_ENCRYPTION_KEYS": f"{new},{old}"}
    with pytest.raises(RotationRefused, match=r"not in .*\.env's TOKEN_ENCRYPTION_KEYS"):
        check_rotation_target(settings, environ=environ, env_file=env_file)
    env_file.write_text(f"TOKEN_ENCRYPTION_KEYS={new},{old}\n")
    check_rotation_target(settings, environ=environ, env_file=env_file)  # the service has it too


def test_a_key_only_in_the_environment_cannot_replace_the_key_file(tmp_path: Path) -> None:
    file_key, new = load_or_create_keys(tmp_path / "data")[0], generate_key()
    settings = _settings(tmp_path, token_encryption_keys=f"{new},{file_key}")
    environ = {"TOKEN_ENCRYPTION_KEYS": f"{new},{file_key}"}
    assert key_source(settings, environ=environ) == "environment"
    with pytest.raises(RotationRefused, match="chorus rotate-key --new-key"):
        check_rotation_target(settings, environ=environ, env_file=tmp_path / ".env")
    # The key file's own key, or an external database configured by the environment: allowed.
    check_rotation_target(
        _settings(tmp_path, token_encryption_keys=file_key),
        environ={"TOKEN_ENCRYPTION_KEYS": file_key},
        env_file=tmp_path / ".env",
    )
    external = _settings(tmp_path, mongodb_url="mongodb://db/", token_encryption_keys=new)
    check_rotation_target(external, environ={"TOKEN_ENCRYPTION_KEYS": new}, env_file=tmp_path / ".env")
    assert key_source(_settings(tmp_path), environ={}) == "key-file"


async def test_embedded_rotation_through_the_key_file(tmp_path: Path) -> None:
    """The issue's trap, then the way out: the key file rotates itself, the old key stays until
    told to go, and `bots list` fails loudly when the fleet is stranded anyway."""
    env = clean_env(DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING")
    chorus = Chorus(env=env, cwd=tmp_path, settings=_settings(tmp_path))
    # One embedded database for every command below (`chorus db`), instead of one start each.
    database = await asyncio.create_subprocess_exec(
        CHORUS, "db", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert database.stdout is not None
        async with asyncio.timeout(60):
            assert "running on" in (await database.stdout.readline()).decode()
        await _rotate_through_the_key_file(chorus, tmp_path)
    finally:
        database.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            await database.communicate()


async def _rotate_through_the_key_file(chorus: Chorus, tmp_path: Path) -> None:
    client_id = 1_234_567_890_123_456_789
    token = make_fake_token(client_id)
    chorus.write_seed([{"name": "Music 1", "token": token}])
    seeded = await chorus("seed", "bots.json")
    assert seeded.code == 0, seeded
    data = tmp_path / "data"
    (old_key,) = read_keys(data)

    # `TOKEN_ENCRYPTION_KEYS=NEW,OLD chorus rotate-key` (the old --help example): refused.
    new_key = generate_key()
    refused = await chorus("rotate-key", env={"TOKEN_ENCRYPTION_KEYS": f"{new_key},{old_key}"})
    assert refused.code == 2, refused
    assert "refusing to rotate" in refused.stderr and "--new-key" in refused.stderr
    assert new_key not in refused.stderr and old_key not in refused.stderr
    assert read_keys(data) == [old_key]
    assert (await chorus("bots", "list")).code == 0

    rotated = await chorus("rotate-key", "--new-key")
    assert rotated.code == 0, rotated
    assert "Re-encrypted 1 token(s) with the primary key; 0 already used it." in rotated.stdout
    keys = read_keys(data)
    assert len(keys) == 2 and keys[1] == old_key
    assert (data / "token-encryption.key").stat().st_mode & 0o777 == 0o600
    assert "--drop-old-keys" in rotated.stdout
    listed = await chorus("bots", "list", "--json")
    assert listed.code == 0 and json.loads(listed.stdout)[0]["token"] == "primary", listed

    dropped = await chorus("rotate-key", "--drop-old-keys")
    assert dropped.code == 0, dropped
    assert "Removed 1 old key(s)" in dropped.stdout
    assert read_keys(data) == keys[:1]
    assert (await chorus("bots", "list")).code == 0

    # Stranded on purpose (the key file replaced): the listing says so and exits 1.
    write_keys(data, [generate_key()])
    stranded = await chorus("bots", "list")
    assert stranded.code == 1, stranded
    assert "unreadable" in stranded.stdout and "Music 1" in stranded.stderr

    with_env = await chorus("rotate-key", "--new-key", env={"TOKEN_ENCRYPTION_KEYS": generate_key()})
    assert with_env.code == 2 and "TOKEN_ENCRYPTION_KEYS is set" in with_env.stderr
    for run in chorus.runs:
        assert token not in run.stdout + run.stderr
