"""Shared fixtures: the test database, the fake Discord, settings, and the running app.

The database is SecantusDB started once per session as a separate process (in memory), or
the real MongoDB named by TEST_MONGODB_URL. Every test gets a database of its own.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import discord.gateway
import discord.http
import pytest
from beanie import init_beanie
from pymongo import AsyncMongoClient

from app import wait_for
from app.bots.heartbeat import HonestKeepAlive, beating_handlers
from app.db.connection import make_client
from app.db.models import DOCUMENT_MODELS
from app.logs import install_redaction
from app.settings import Settings
from app.tokens import generate_key

install_redaction()
wait_for.install()  # as the service does (app.runtime.open_store): cancellations are never lost


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    external = os.environ.get("TEST_MONGODB_URL")
    if external:
        yield external
        return
    port = _free_port()
    server = Path(sys.executable).parent / "secantusd-py"
    process = subprocess.Popen(
        [
            str(server),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the test database (SecantusDB) did not start") from None
            time.sleep(0.05)
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def database_name() -> str:
    return f"chorus_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo(mongodb_url: str, database_name: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client on this test's own database, with Beanie initialised; dropped afterwards."""
    client = make_client(mongodb_url)
    await init_beanie(database=client[database_name], document_models=DOCUMENT_MODELS)
    try:
        yield client
    finally:
        await client.drop_database(database_name)
        await client.close()


@pytest.fixture
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def restore_discord_endpoints() -> Iterator[None]:
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
def make_settings(mongodb_url: str, database_name: str, encryption_key: str, tmp_path: Path) -> Any:
    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_url": mongodb_url,
            "mongodb_database": database_name,
            "token_encryption_keys": encryption_key,
            "data_dir": tmp_path / "data",
            "guild_ready_timeout": 0.1,
            "bot_retry_initial_delay": 0.1,
            "bot_retry_max_delay": 0.5,
            "log_level": "DEBUG",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings init kwarg

    return factory


def _heartbeats() -> set[HonestKeepAlive]:
    return set(beating_handlers())


@pytest.fixture(autouse=True)
def _no_gateway_left_open() -> Iterator[None]:
    """Every gateway connection a test opens is closed: a leaked one keeps its heartbeat going
    (in production it would keep a session alive)."""
    before = _heartbeats()
    yield
    deadline = time.monotonic() + 30.0  # generous: a busy machine closes sockets late
    while (leaked := _heartbeats() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    for handler in leaked:
        handler.stop()
    assert not leaked, f"{len(leaked)} gateway connection(s) left open"


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Capture everything, so the redaction tests see every line a test produced.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="pymongo")  # command-level DEBUG is noise here


@pytest.fixture
async def fake_discord(
    restore_discord_endpoints: None, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Any]:
    """A fake Discord; after the test, no token of any of its bots may appear in the logs."""
    from tests.fakes.discord import FakeDiscord

    fake = FakeDiscord(heartbeat_interval_ms=30_000)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    logged = caplog.text
    leaked = [bot.name for bot in fake.bots.values() if bot.token in logged]
    assert not leaked, f"tokens of {leaked} reached the logs"


@pytest.fixture
def fleet_settings(make_settings: Any, fake_discord: Any) -> Settings:
    return make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
    )


@pytest.fixture
def bystander() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """An unrelated process listening on a loopback port: what a stale pid and port may now be."""
    port = _free_port()
    script = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the bystander did not start"
            time.sleep(0.05)
    yield process, port
    process.kill()
    process.wait()
