"""Run `chorus` subcommands as real subprocesses against the fake Discord and the test database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.db.models import MusicBot
from app.settings import Settings
from tests.fakes.discord import FakeDiscord

CHORUS = str(Path(sys.executable).parent / "chorus")
ROOT = Path(__file__).resolve().parents[2]


def _setting_env_names() -> set[str]:
    names = {"DATABASE_URL"}
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            names.update(str(choice) for choice in choices)
        else:
            names.add(name.upper())
    return names


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    def __str__(self) -> str:
        head = f"$ {' '.join(self.args)} -> {self.code} in {self.seconds:.1f}s"
        return f"{head}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Chorus:
    """`await chorus("seed", "file.json")` runs the real console script; every run is kept."""

    env: dict[str, str]
    cwd: Path
    settings: Settings
    runs: list[Run] = field(default_factory=list)
    python: str = sys.executable

    async def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        program: Sequence[str] = (CHORUS,),
        timeout: float = 60,
    ) -> Run:
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *program,
            *args,
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        seconds = time.monotonic() - started
        run = Run((*program, *args), process.returncode or 0, out.decode(), err.decode(), seconds)
        self.runs.append(run)
        return run

    def write_seed(self, entries: Any, name: str = "bots.json") -> Path:
        path = self.cwd / name
        path.write_text(json.dumps(entries, indent=2))
        return path


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any Chorus setting, plus `extra`."""
    names = _setting_env_names()
    env = {key: value for key, value in os.environ.items() if key not in names}
    env.update(extra)
    return env


@pytest.fixture
async def chorus(make_settings: Any, fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[Chorus]:
    settings: Settings = make_settings(discord_api_base=fake_discord.api_base)
    assert settings.mongodb_url is not None
    env = clean_env(
        MONGODB_URL=settings.mongodb_url.get_secret_value(),
        MONGODB_DATABASE=settings.mongodb_database,
        TOKEN_ENCRYPTION_KEYS=settings.encryption_keys[0],
        DISCORD_API_BASE=fake_discord.api_base,
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="INFO",
    )
    runner = Chorus(env=env, cwd=tmp_path, settings=settings)
    yield runner
    # Whatever happened, no token of any fake bot was printed by any command.
    for run in runner.runs:
        for bot in fake_discord.bots.values():
            assert bot.token not in run.stdout + run.stderr, f"{bot.name}'s token printed by {run.args}"


async def stored_bots(mongo: AsyncMongoClient[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Every bot document as stored, in a stable order."""
    collection = mongo[settings.mongodb_database][MusicBot.Settings.name]
    return [doc async for doc in collection.find({}).sort("client_id", 1)]
