"""Ctrl-C during an operator command: it says what was and was not done, exits 130, and stops
the embedded database it started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

import app.config_errors
import app.ops.seed_cli
from app.cli import cli
from app.embedded import STATE_FILE
from app.ops import cli_support
from app.process import is_alive
from app.tokens import generate_key
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.ops.conftest import CHORUS, Chorus, clean_env


async def test_ctrl_c_before_the_write_stores_nothing_and_stops_the_embedded_database(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    bots = [fake_discord.add_bot(name=f"Music {n}") for n in (1, 2)]
    seed = tmp_path / "bots.json"
    seed.write_text(json.dumps([{"name": bot.name, "token": bot.token} for bot in bots]))
    data = tmp_path / "data"
    env = clean_env(DATA_DIR=str(data), DISCORD_API_BASE=fake_discord.api_base, LOG_LEVEL="INFO")
    gate = fake_discord.hold_rest("/users/@me")  # --check-online waits here, before any write
    process = await asyncio.create_subprocess_exec(
        CHORUS, "seed", "--check-online", str(seed),
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await fake_discord.wait_for_request("/users/@me")
        database_pid = json.loads((data / STATE_FILE).read_text())["pid"]
        assert is_alive(database_pid)
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    finally:
        gate.set()
        if process.returncode is None:
            process.kill()
    stdout, stderr = out.decode(), err.decode()
    assert process.returncode == 130, stderr
    assert "chorus: interrupted before anything was written: no bot was stored or changed" in stderr
    assert "Traceback" not in stderr and "Invite URLs" not in stdout
    # The embedded database this command started is stopped, not orphaned.
    assert not (data / STATE_FILE).exists()
    async with asyncio.timeout(30):
        while is_alive(database_pid):
            await asyncio.sleep(0.05)
    # And nothing was stored.
    chorus = Chorus(env=env, cwd=tmp_path, settings=None)  # type: ignore[arg-type]  # settings unused here
    listed = await chorus("bots", "list")
    assert listed.code == 0, listed
    assert "No bots in database 'chorus'" in listed.stdout
    for bot in bots:
        assert bot.token not in stdout + stderr + listed.stdout + listed.stderr


def test_ctrl_c_during_the_write_finishes_it_and_prints_the_summary(
    mongodb_url: str, database_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, so the signal lands exactly while the write runs."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    # pytest owns logging: no handler or level changes from the command
    monkeypatch.setattr(app.config_errors, "configure_logging", lambda level, **_: None)
    real_apply = app.ops.seed_cli.apply_seed

    async def apply_after_ctrl_c(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        guard = cli_support._guard.get()
        assert guard is not None
        async with asyncio.timeout(30):
            while not guard.requested:
                await asyncio.sleep(0.01)
        await real_apply(*args, **kwargs)

    monkeypatch.setattr(app.ops.seed_cli, "apply_seed", apply_after_ctrl_c)
    client_ids = [1_234_567_890_123_456_001, 1_234_567_890_123_456_002]
    seed = tmp_path / "bots.json"
    seed.write_text(json.dumps([{"name": f"Bot {i}", "token": make_fake_token(i)} for i in client_ids]))
    env = {
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": database_name,
        "TOKEN_ENCRYPTION_KEYS": generate_key(),
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = CliRunner().invoke(cli, ["seed", str(seed)], env=env)
    with MongoClient(mongodb_url) as client:
        try:
            stored = sorted(doc["client_id"] for doc in client[database_name]["music_bots"].find({}))
        finally:
            client.drop_database(database_name)
    assert result.exit_code == 130, result.output
    assert stored == client_ids  # the write was finished, all of it
    assert "Seeded 2 bot(s)" in result.stdout
    assert f"client_id={client_ids[0]}" in result.stdout  # the invite URLs are not lost
    assert "interrupted after the write: the bots above were stored" in result.stderr
