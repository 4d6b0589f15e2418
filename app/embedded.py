"""The embedded database: SecantusDB run as a child process when no MONGODB_URL is set.

SecantusDB is GPL-2.0-only, so it is kept at arm's length: an optional extra, started as a
separate process, never imported. Its data lives under `DATA_DIR/db`. A small state file
(`DATA_DIR/embedded-db.json`) lets a second `chorus` command find and reuse a running
instance instead of opening the same WiredTiger files twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

STATE_FILE = "embedded-db.json"
LOCK_FILE = "embedded-db.lock"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not be started."""


@dataclass(frozen=True, slots=True)
class EmbeddedState:
    pid: int
    port: int
    owner_pid: int

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited and only waits for its parent to reap it.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command() -> list[str]:
    candidates = [Path(sys.executable).parent / "secantusd-py"]
    found = shutil.which("secantusd-py")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.exists():
            return [str(candidate)]
    raise EmbeddedDatabaseError(
        "no MONGODB_URL is set and the embedded database is not installed: "
        "install the extra with `pip install 'chorus-music[embedded]'` or set MONGODB_URL"
    )


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EmbeddedDatabase:
    """Finds a running embedded SecantusDB for `data_dir`, or starts one and owns it."""

    def __init__(self, data_dir: Path, *, start_timeout: float = 60.0) -> None:
        self.data_dir = data_dir.resolve()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._state: EmbeddedState | None = None
        self.owned = False

    @property
    def url(self) -> str:
        if self._state is None:
            raise EmbeddedDatabaseError("the embedded database is not running")
        return self._state.url

    def _read_state(self) -> EmbeddedState | None:
        try:
            raw = json.loads((self.data_dir / STATE_FILE).read_text())
            return EmbeddedState(pid=int(raw["pid"]), port=int(raw["port"]), owner_pid=int(raw["owner_pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, state: EmbeddedState) -> None:
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": state.pid, "port": state.port, "owner_pid": state.owner_pid}))
        tmp.replace(path)

    def start(self) -> str:
        """Blocking: reuse or start the server and return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.data_dir):
            state = self._read_state()
            if state is not None and _pid_alive(state.pid) and _port_open(state.port):
                if _pid_alive(state.owner_pid):
                    _log.info("Using the embedded database already running on port %d", state.port)
                else:
                    # Its owner died without stopping it: adopt it, so it is stopped on our exit.
                    state = EmbeddedState(pid=state.pid, port=state.port, owner_pid=os.getpid())
                    self._write_state(state)
                    self.owned = True
                    _log.info("Adopted the orphaned embedded database on port %d", state.port)
                self._state = state
                return state.url
            self._spawn()
            return self.url

    def _spawn(self) -> None:
        port = _free_port()
        storage = self.data_dir / "db"
        storage.mkdir(exist_ok=True)
        log_path = self.data_dir / "embedded-db.log"
        command = [
            *_server_command(),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--storage-path", str(storage),
            "--log-level", "WARNING",
        ]  # fmt: skip
        _log.info("Starting the embedded database (SecantusDB) on 127.0.0.1:%d, data in %s", port, storage)
        with open(log_path, "ab") as log_file:
            # Its own session: a Ctrl-C meant for us must not kill it before we have shut down.
            self._process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while not _port_open(port):
            if self._process.poll() is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded database exited with code {self._process.returncode}; see {log_path}"
                )
            if time.monotonic() > deadline:
                self._terminate()
                raise EmbeddedDatabaseError(
                    f"the embedded database did not start in {self.start_timeout:.0f}s"
                )
            time.sleep(0.05)
        self._state = EmbeddedState(pid=self._process.pid, port=port, owner_pid=os.getpid())
        self._write_state(self._state)
        self.owned = True

    def _terminate(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _log.warning("The embedded database did not stop in 15s; killing it")
                self._process.kill()
                self._process.wait()
        elif self._state is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._state.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid_alive(self._state.pid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        """Blocking: stop the server if this process owns it."""
        if not self.owned or self._state is None:
            return
        with _locked(self.data_dir):
            _log.info("Stopping the embedded database")
            self._terminate()
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / STATE_FILE).unlink()
        self.owned = False
        self._state = None


@contextlib.asynccontextmanager
async def embedded_database(data_dir: Path) -> AsyncIterator[EmbeddedDatabase]:
    database = EmbeddedDatabase(data_dir)
    # Shielded: a Ctrl-C during the start must not abandon the thread that is spawning the
    # server; it is waited for, and the server it started is stopped below, not orphaned.
    starting = asyncio.ensure_future(asyncio.to_thread(database.start))
    try:
        await asyncio.shield(starting)
        yield database
    finally:
        if not starting.done():
            await asyncio.wait({starting})
        if starting.exception() is None:
            await asyncio.to_thread(database.stop)
