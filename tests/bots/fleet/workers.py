"""Several real `chorus serve` processes on one database: what the multi-worker tests drive.

Each worker is a subprocess on its own HTTP port with its logs in a file (printed when a test
fails); the fake Discord and the fake Lavalink run in the test process, the database in its own
(tests/database_process.py), so a worker can be SIGTERMed or SIGKILLed and the database stopped
while the fakes see everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from beanie import init_beanie
from pymongo import AsyncMongoClient

from app.db.connection import make_client
from app.db.models import DOCUMENT_MODELS
from app.settings import Settings
from tests.database_process import DatabaseProcess, free_port
from tests.fakes.discord import FakeBot, FakeDiscord, FakeGuild
from tests.fakes.lavalink import FakeLavalink, FakePlayer
from tests.fleet import store_bot

CHORUS = str(Path(sys.executable).parent / "chorus")
# Variables of the caller's environment that must not leak into a worker.
_OWN = {"MONGODB_URL", "DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "LAVALINK_NODES", "DISCORD_TOKEN"}


@dataclass
class Worker:
    name: str
    port: int
    log: Path
    process: asyncio.subprocess.Process | None = None
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10.0)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, env: Mapping[str, str], cwd: Path) -> None:
        full = {k: v for k, v in os.environ.items() if k not in _OWN}
        full.update(env)
        full["HTTP_PORT"] = str(self.port)
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                CHORUS, "serve", env=full, cwd=cwd, stdout=log, stderr=log
            )

    async def get(self, path: str) -> Any:
        response = await self.http.get(path)
        response.raise_for_status()
        return response.json()

    async def up(self) -> bool:
        try:
            await self.http.get("/health")
        except httpx.TransportError:
            return False
        return True

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def close(self) -> None:
        if self.running:
            self.signal(signal.SIGKILL)
            await self.wait_exit()
        await self.http.aclose()

    def tail(self, lines: int = 80) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Fleet:
    """The workers of one test."""

    def __init__(self, directory: Path, env: Mapping[str, str]) -> None:
        self.directory = directory
        self.env = dict(env)
        self.workers: list[Worker] = []

    def add(self) -> Worker:
        index = len(self.workers) + 1
        worker = Worker(f"w{index}", free_port(), self.directory / f"worker-{index}.log")
        self.workers.append(worker)
        return worker

    async def start(self, count: int) -> list[Worker]:
        """`count` new workers, all started at the same moment."""
        started = [self.add() for _ in range(count)]
        await asyncio.gather(*(worker.start(self.env, self.directory) for worker in started))
        async with asyncio.timeout(120):
            while not all([await worker.up() for worker in started]):
                for worker in started:
                    assert worker.running, f"{worker.name} exited early:\n{worker.tail()}"
                await asyncio.sleep(0.2)
        return started

    @property
    def alive(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.running]

    async def close(self) -> None:
        await asyncio.gather(*(worker.close() for worker in self.workers))

    def logs(self) -> str:
        return "\n".join(f"==== {w.name} (port {w.port})\n{w.tail()}" for w in self.workers)

    def log_text(self) -> str:
        return "\n".join(w.log.read_text(errors="replace") for w in self.workers if w.log.exists())


async def eventually(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; its last error or value
    is in the failure message."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    value = check()
                    if asyncio.iscoroutine(value):
                        value = await value
                except (AssertionError, httpx.HTTPError) as exc:
                    last = exc
                else:
                    if value:
                        return value
                    last = value
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {last!r}") from None


@dataclass
class Stage:
    """What every multi-worker test starts from: a database of its own (to stop and start), a
    fake Lavalink whose positions move with the clock, bots stored in the database and present in
    one lobby guild, and a fleet of no workers yet, configured for all of it."""

    discord: FakeDiscord
    database: DatabaseProcess
    settings: Settings
    observer: AsyncMongoClient[dict[str, Any]]
    lavalink: FakeLavalink
    fleet: Fleet
    bots: list[FakeBot]

    def player(self, bot: FakeBot, guild: FakeGuild) -> FakePlayer | None:
        """`bot`'s player in `guild` on its live Lavalink session, if it has one."""
        session = self.lavalink.session_for_user(bot.client_id)
        return None if session is None else session.players.get(guild.id)

    def title(self, bot: FakeBot, guild: FakeGuild) -> str | None:
        """The title of the track `bot` plays in `guild`, if any."""
        player = self.player(bot, guild)
        return None if player is None or player.track is None else player.track["info"]["title"]


@contextlib.asynccontextmanager
async def fleet_stage(
    directory: Path,
    discord: FakeDiscord,
    make_settings: Callable[..., Settings],
    *,
    bots: int,
    tracks: int,
    env: Mapping[str, str],
) -> AsyncIterator[Stage]:
    """A `Stage` with `bots` bots ("Chorus 1"...) and `tracks` hour-long tracks ("Song 1"...,
    identifiers "t1"...); `env` adds to (or overrides) the workers' environment. On the way out
    every worker is killed, and no worker may have logged a token or a traceback."""
    database = DatabaseProcess(directory / "db")
    database.start()
    settings = make_settings(mongodb_url=database.url)
    observer = make_client(database.url)
    lavalink = FakeLavalink(autoclock=True)  # positions move with the clock, as on a real node
    fleet = Fleet(directory, {})
    try:
        await init_beanie(database=observer[settings.mongodb_database], document_models=DOCUMENT_MODELS)
        await lavalink.start()
        for n in range(1, tracks + 1):
            lavalink.add_track(identifier=f"t{n}", title=f"Song {n}", length_ms=3_600_000,
                               uri=f"https://music.example/t{n}")  # fmt: skip
        lobby = discord.add_guild(member_count=5)
        stored = [discord.add_bot(name=f"Chorus {n}") for n in range(1, bots + 1)]
        for bot in stored:
            await discord.add_bot_to_guild(bot, lobby.id)
            await store_bot(observer, settings, bot)
        assert settings.mongodb_url is not None
        fleet.env = {
            "MONGODB_URL": settings.mongodb_url.get_secret_value(),
            "MONGODB_DATABASE": settings.mongodb_database,
            "TOKEN_ENCRYPTION_KEYS": settings.encryption_keys[0],
            "DISCORD_API_BASE": discord.api_base,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            "LAVALINK_NODES": f"main={lavalink.uri}={lavalink.password}",
            "GUILD_READY_TIMEOUT": "0.1",
            "IDENTIFY_INTERVAL": "0",
            "BOT_RETRY_INITIAL_DELAY": "0.2",
            "BOT_RETRY_MAX_DELAY": "2",
            "LAVALINK_HEALTH_INTERVAL": "0.5",
            "LOG_LEVEL": "INFO",
            **env,
        }
        yield Stage(discord, database, settings, observer, lavalink, fleet, stored)
    except BaseException:
        print(fleet.logs())  # shown by pytest with the failure
        raise
    finally:
        await fleet.close()
        await lavalink.close()
        database.kill()
        await observer.close()
    logs = fleet.log_text()
    assert not [bot.name for bot in discord.bots.values() if bot.token in logs], "a token was logged"
    assert "Traceback" not in logs, fleet.logs()


async def until(predicate: Callable[[], Any], *, what: str, timeout: float = 30.0) -> None:
    """`eventually`, polled often: for the in-process tests that wait on the loop's own state."""
    await eventually(predicate, timeout=timeout, what=what, interval=0.02)
