"""Several real `chorus serve` processes on one database: what the multi-worker tests drive.

Each worker is a subprocess on its own HTTP port with its logs in a file (printed when a test
fails); the fake Discord and the fake Lavalink run in the test process, the database in its own
(tests/database_process.py), so a worker can be SIGTERMed or SIGKILLed and the database stopped
while the fakes see everything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.database_process import free_port

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
