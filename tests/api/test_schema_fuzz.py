"""Schemathesis against the running app: every operation, the admin token, every check.

The app runs for real (lifespan, database, a bot on the fake Discord) behind uvicorn on a loopback
port; schemathesis runs as its own process against the served OpenAPI schema. It fails on any
5xx, any response that does not match the schema (status, body, headers, Allow), any schema-valid
request refused and any schema-invalid request accepted. The number of examples is bounded so
the run stays well under a minute.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
ADMIN_TOKEN = "fuzz-admin-token"
MAX_EXAMPLES = 25
SEED = 12


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_every_operation_survives_schemathesis(
    fake_discord: FakeDiscord, make_settings: Any, mongo: AsyncMongoClient[dict[str, Any]], tmp_path: Path
) -> None:
    settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        admin_api_token=ADMIN_TOKEN,
        log_level="INFO",
    )
    bot = fake_discord.add_bot(name="Fuzzed")
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.READY)
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(running.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
        )
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(30):
                while not server.started:
                    await asyncio.sleep(0.05)
            process = await asyncio.create_subprocess_exec(
                SCHEMATHESIS, "--config-file", str(CONFIG), "--no-color",
                "run", f"http://127.0.0.1:{port}/openapi.json",
                "--checks", "all",
                "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", str(SEED),
                # One worker: in threads CPython 3.11 can fail compiling ("AST constructor recursion").
                "--workers", "1",
                "--request-timeout", "20",
                "--generation-database", "none",
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            async with asyncio.timeout(120):
                output, _ = await process.communicate()
        finally:
            server.should_exit = True
            await serving
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert "Selected: 10/10" in report and "Tested: 10" in report, report  # GET /workers included
