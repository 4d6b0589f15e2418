"""The HTTP server's main loop wakes once a second, not ten times, and a stop still ends it at once."""

from __future__ import annotations

import asyncio
import signal

import pytest
import uvicorn
from fastapi import FastAPI

from app import cli
from app.shutdown import ExitDeadline


async def test_a_stop_wakes_the_server_loop_without_waiting_for_its_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "SERVER_TICK", 3600.0)  # only the stop can end the wait in time
    server = cli._Server(uvicorn.Config(FastAPI()), ExitDeadline(3600.0))  # pyright: ignore[reportPrivateUsage]
    ticks = 0
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        nonlocal ticks
        ticks += 1
        assert counter % 10 == 0  # every tick refreshes uvicorn's Date header
        return await on_tick(counter)

    monkeypatch.setattr(server, "on_tick", counted)
    try:
        loop = asyncio.create_task(server.main_loop())
        async with asyncio.timeout(30):
            while ticks == 0:
                await asyncio.sleep(0.01)
        assert not loop.done()
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        async with asyncio.timeout(30):  # generous; the tick would take an hour
            await loop
        assert server.should_exit and ticks == 2
    finally:
        server.exit_deadline.cancel()
