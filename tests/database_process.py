"""A SecantusDB server of one test's own, to kill, restart, pause (SIGSTOP) and resume (SIGCONT)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DatabaseProcess:
    """`secantusd-py` on a free port with its data in `storage` (so a restart keeps it)."""

    def __init__(self, storage: Path) -> None:
        storage.mkdir(parents=True, exist_ok=True)
        self.storage = storage
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        server = Path(sys.executable).parent / "secantusd-py"
        args = [str(server), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--storage-path", str(self.storage), "--log-level", "ERROR"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, "database did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.resume()
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open and answers nothing (a hung database)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
            self.paused = False


@contextlib.contextmanager
def database_process(storage: Path) -> Iterator[DatabaseProcess]:
    database = DatabaseProcess(storage)
    database.start()
    try:
        yield database
    finally:
        database.kill()
