"""`chorus serve` as a real process: HTTP over a socket, SIGTERM, a clean exit."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from app.embedded import STATE_FILE
from app.settings import Settings
from app.tokens import token_fingerprint
from tests.database_process import DatabaseProcess, free_port
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.fleet import store_bot

CHORUS = str(Path(sys.executable).parent / "chorus")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MONGODB_URL", "DATABASE_URL", "TOKEN_ENCRYPTION_KEYS"}
    }
    env.update(extra)
    return env


async def _serve(cwd: Path, **env: str) -> asyncio.subprocess.Process:
    """`chorus serve` in `cwd` with `env` on top of a clean environment, its output captured."""
    return await asyncio.create_subprocess_exec(
        CHORUS,
        "serve",
        env=_clean_env(**env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_for_health(
    port: int, process: asyncio.subprocess.Process, timeout: float = 60
) -> dict[str, Any]:
    async with httpx.AsyncClient() as http, asyncio.timeout(timeout):
        while True:
            assert process.returncode is None, "chorus serve exited early"
            try:
                response = await http.get(f"http://127.0.0.1:{port}/health")
                return response.json()
            except httpx.TransportError:
                await asyncio.sleep(0.1)


async def _terminate(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    return process.returncode or 0, stderr.decode()


async def test_serve_on_embedded_defaults_then_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    process = await _serve(tmp_path, HTTP_PORT=str(port), DATA_DIR=str(data_dir))
    health = await _wait_for_health(port, process)
    assert health["status"] == "ok"
    assert health["activeBots"] == 0
    state = json.loads((data_dir / STATE_FILE).read_text())
    assert (data_dir / "token-encryption.key").stat().st_mode & 0o777 == 0o600

    code, stderr = await _terminate(process)
    assert code == 0, stderr
    assert "Application shutdown complete" in stderr
    assert not (data_dir / STATE_FILE).exists()
    try:
        os.kill(state["pid"], 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the embedded database outlived chorus serve")


async def _serve_against_fakes(
    tmp_path: Path, settings: Settings, fake_discord: FakeDiscord, port: int, *, log_level: str
) -> asyncio.subprocess.Process:
    """`chorus serve` on the test database and the fake Discord, with its output captured."""
    assert settings.mongodb_url is not None
    return await _serve(
        tmp_path,
        HTTP_PORT=str(port),
        MONGODB_URL=settings.mongodb_url.get_secret_value(),
        MONGODB_DATABASE=settings.mongodb_database,
        TOKEN_ENCRYPTION_KEYS=settings.encryption_keys[0],
        DISCORD_API_BASE=fake_discord.api_base,
        DISCORD_GATEWAY_URL=fake_discord.gateway_url,
        GUILD_READY_TIMEOUT="0.1",
        LOG_LEVEL=log_level,
    )


async def test_serve_runs_bots_and_closes_them_on_sigterm(
    tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    settings: Settings = make_settings()
    bot = fake_discord.add_bot(name="Process bot")
    await store_bot(mongo, settings, bot)
    port = free_port()
    process = await _serve_against_fakes(tmp_path, settings, fake_discord, port, log_level="DEBUG")
    async with asyncio.timeout(30):
        while (await _wait_for_health(port, process))["activeBots"] != 1:
            await asyncio.sleep(0.1)
    assert fake_discord.is_connected(bot)

    code, stderr = await _terminate(process)
    assert code == 0, stderr
    assert not fake_discord.is_connected(bot)
    assert bot.token not in stderr
    assert "ready" in stderr
    # Voice runs on Lavalink: said once, instead of discord.py's warnings about its voice packages.
    assert stderr.count("Voice runs on Lavalink") == 1
    assert "PyNaCl is not installed" not in stderr and "davey is not installed" not in stderr
    # LOG_LEVEL=DEBUG: PyMongo's command log stays off, so no ciphertext or fingerprint is logged.
    assert "pymongo.command" not in stderr and "gAAAA" not in stderr
    assert token_fingerprint(bot.token) not in stderr


async def test_sigterm_with_a_fleet_closes_every_session_and_exits(
    tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    """40 bots: SIGTERM drains the worker (every player saved in one write, then each bot handed
    over: closed and its lease released, a bounded number at a time); the process exits 0 and
    every bot closed its gateway connection with a close frame before the exit."""
    settings: Settings = make_settings()
    bots = [fake_discord.add_bot(name=f"Fleet bot {n}") for n in range(40)]
    for bot in bots:
        await store_bot(mongo, settings, bot)
    port = free_port()
    process = await _serve_against_fakes(tmp_path, settings, fake_discord, port, log_level="INFO")
    async with asyncio.timeout(60):
        while (await _wait_for_health(port, process))["activeBots"] != len(bots):
            await asyncio.sleep(0.1)
    assert all(fake_discord.is_connected(bot) for bot in bots)

    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):  # generous: the shutdown deadline is 40 s
        _, err = await process.communicate()
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert stderr.count("stopped for a hand-over") == len(bots)
    assert "not handed over" not in stderr and "not stopped cleanly" not in stderr
    for bot in bots:
        assert not fake_discord.is_connected(bot)
        # Closed with a close frame (not dropped by the exit): 1000, or the 4000 discord.py sends
        # when its reader sees the close first.
        assert bot.client_closes and bot.client_closes[-1] in (1000, 4000), (bot.name, bot.client_closes)


async def test_explicit_database_without_key_refuses_to_start(tmp_path: Path) -> None:
    process = await _serve(tmp_path, MONGODB_URL="mongodb://127.0.0.1:9/", HTTP_PORT=str(free_port()))
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert "TOKEN_ENCRYPTION_KEYS is required" in stderr.decode()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _status_before_the_body(port: int, path: str, declared: int, sent: int) -> int:
    """POST declaring `declared` bytes but sending only `sent`: the status line, read while the
    rest of the body never comes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: chorus\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        writer.write(b" " * sent)
        await writer.drain()
        async with asyncio.timeout(30):
            status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_serve_refuses_bad_input_and_answers_503_when_the_database_goes(
    tmp_path: Path, make_settings: Any
) -> None:
    database = DatabaseProcess(tmp_path / "db")
    database.start()
    settings: Settings = make_settings()
    port = free_port()
    process = await _serve(
        tmp_path,
        HTTP_PORT=str(port),
        MONGODB_URL=database.url,
        MONGODB_DATABASE=settings.mongodb_database,
        TOKEN_ENCRYPTION_KEYS=settings.encryption_keys[0],
        ADMIN_API_TOKEN="serve-admin-token",
        DISCORD_API_BASE="http://127.0.0.1:9/api/v10",  # never reached: every request is refused first
        LOG_LEVEL="DEBUG",
    )
    try:
        await _wait_for_health(port, process)
        admin = {"Authorization": "Bearer serve-admin-token"}
        base = f"http://127.0.0.1:{port}"
        # 8 bodies of 50 MB without credentials: each refused before its body arrives.
        before = _rss_kib(process.pid)
        statuses = await asyncio.gather(
            *(_status_before_the_body(port, "/bots", 50 * 1024 * 1024, 1024 * 1024) for _ in range(8))
        )
        grown_mib = (_rss_kib(process.pid) - before) / 1024
        print(f"RSS growth after 8 x 50 MB unauthenticated bodies: {grown_mib:.1f} MiB")
        assert statuses == [401] * 8
        assert grown_mib < 64
        token = make_fake_token(123456789012345678)
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get(f"/guilds/{2**63}/bots")).status_code == 422
            assert (await http.post("/guilds/0/invite", headers=admin)).status_code == 422
            named = await http.post("/bots", json={"token": token, "name": token}, headers=admin)
            assert named.status_code == 422 and token not in named.text
            assert (await http.patch("/bots/1", json={"enabled": "yes"}, headers=admin)).status_code == 422

            database.kill()
            for request in (http.get("/guilds/1/bots"), http.post("/guilds/1/invite", headers=admin)):
                answer = await request
                assert answer.status_code == 503 and answer.headers["retry-after"] == "5", answer.text
            health = (await http.get("/health")).json()
            assert health["status"] == "degraded" and health["database"] == "unreachable"
    finally:
        code, stderr = await _terminate(process)
        database.kill()
    assert code == 0, stderr
    assert "OverflowError" not in stderr and "Traceback" not in stderr
    assert token not in stderr


async def test_serve_ignores_a_stale_embedded_state_file(
    tmp_path: Path, bystander: tuple[subprocess.Popen[bytes], int]
) -> None:
    """After a reboot the recorded pid and port belong to something else: serve starts its own
    database, and on SIGTERM signals only that one."""
    other, other_port = bystander
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / STATE_FILE).write_text(
        json.dumps({"pid": other.pid, "port": other_port, "owner_pid": 2**22 + 3, "instance_id": "0" * 32})
    )
    port = free_port()
    process = await _serve(tmp_path, HTTP_PORT=str(port), DATA_DIR=str(data_dir))
    health = await _wait_for_health(port, process)
    assert health["database"] == "ok"
    state = json.loads((data_dir / STATE_FILE).read_text())
    assert state["pid"] != other.pid and state["port"] != other_port
    code, stderr = await _terminate(process)
    assert code == 0, stderr
    assert "not the embedded database we started" in stderr
    assert other.poll() is None, "chorus serve signalled a process it did not start"


async def test_ctrl_c_while_serve_starts_stops_what_it_started(tmp_path: Path) -> None:
    """Interrupted while the embedded database starts: exit 130, one line, nothing left running."""
    data_dir = tmp_path / "data"
    process = await _serve(tmp_path, HTTP_PORT=str(free_port()), DATA_DIR=str(data_dir), LOG_LEVEL="INFO")
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(60):
        while "Starting the embedded database" not in (line := (await process.stderr.readline()).decode()):
            assert line, f"serve ended before starting its database: {''.join(seen)}"
            seen.append(line)
        process.send_signal(signal.SIGINT)
        rest = (await process.stderr.read()).decode()
        await process.wait()
    assert process.returncode == 130, rest
    assert "chorus: interrupted while starting; nothing was left running" in rest
    assert "Traceback" not in rest
    assert not (data_dir / STATE_FILE).exists()
    assert "Stopping the embedded database" in rest
