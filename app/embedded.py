"""The embedded database: SecantusDB run as a child process when no MONGODB_URL is set.

SecantusDB is GPL-2.0-only, so it is kept at arm's length: an optional extra, started as a
separate process, never imported. Its data lives under `DATA_DIR/db`. A small state file
(`DATA_DIR/embedded-db.json`) lets a second `chorus` command find and reuse a running
instance instead of opening the same WiredTiger files twice.

That file is only a claim: after a reboot or a container restart its pid may belong to anything.
A server is used, adopted or stopped only once it is proven ours: the process (where /proc
tells) is the one recorded (same start time, same boot) and runs `secantusd` on our storage
and port, and the server itself holds the instance id we wrote into it when we started it.
Everything under DATA_DIR is created private (0700 directories, 0600 files).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from app.process import ProcessIdentity, command_line, is_alive, start_ticks

_log = logging.getLogger(__name__)

STATE_FILE = "embedded-db.json"
LOCK_FILE = "embedded-db.lock"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not be started."""


MARKER_DATABASE = "chorus_embedded"  # holds the instance id of the server we started
_MARKER_TIMEOUT_MS = 5000
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


@dataclass(frozen=True, slots=True)
class EmbeddedState:
    pid: int
    port: int
    owner_pid: int
    instance_id: str = ""  # also written into the server: proves the server on `port` is ours
    started: int | None = None  # the server process's start time (clock ticks since boot)
    owner_started: int | None = None
    boot: str | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def server(self) -> ProcessIdentity:
        return ProcessIdentity(self.pid, self.started, self.boot)

    @property
    def owner(self) -> ProcessIdentity:
        return ProcessIdentity(self.owner_pid, self.owner_started, self.boot)


def _proc_available() -> bool:
    return start_ticks(os.getpid()) is not None


def _open_private(path: Path, flags: int) -> int:
    """A file descriptor on `path`, created 0600 (and tightened to 0600 if an older run left it wider)."""
    fd = os.open(path, flags | os.O_CREAT, _PRIVATE_FILE)
    with contextlib.suppress(OSError):
        os.fchmod(fd, _PRIVATE_FILE)
    return fd


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) 0700; warn if an existing one is open to others."""
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            _log.warning("%s is readable by other users (mode %o): consider chmod 700", path, mode)
        return
    path.mkdir(mode=_PRIVATE_DIR, parents=True, exist_ok=True)


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
    with os.fdopen(_open_private(data_dir / LOCK_FILE, os.O_RDWR), "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_marker(port: int) -> str | None:
    """The instance id the server on `port` holds, or None (not a MongoDB server, not ours, down)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true",
        serverSelectionTimeoutMS=_MARKER_TIMEOUT_MS,
        connectTimeoutMS=_MARKER_TIMEOUT_MS,
        socketTimeoutMS=_MARKER_TIMEOUT_MS,
    )
    try:
        document = client[MARKER_DATABASE]["instance"].find_one({"_id": "instance"})
    except PyMongoError:
        return None
    finally:
        client.close()
    instance_id = document.get("instance_id") if document else None
    return instance_id if isinstance(instance_id, str) else None


def _write_marker(port: int, instance_id: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=_MARKER_TIMEOUT_MS
    )
    try:
        client[MARKER_DATABASE]["instance"].replace_one(
            {"_id": "instance"}, {"_id": "instance", "instance_id": instance_id}, upsert=True
        )
    finally:
        client.close()


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
            return EmbeddedState(
                pid=int(raw["pid"]),
                port=int(raw["port"]),
                owner_pid=int(raw["owner_pid"]),
                instance_id=str(raw.get("instance_id") or ""),
                started=_optional_int(raw.get("started")),
                owner_started=_optional_int(raw.get("owner_started")),
                boot=str(raw["boot"]) if raw.get("boot") else None,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write_state(self, state: EmbeddedState) -> None:
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as handle:
            json.dump(asdict(state), handle)
        tmp.replace(path)

    def _storage(self) -> Path:
        return self.data_dir / "db"

    def _is_ours(self, state: EmbeddedState) -> bool:
        """The recorded server is running, is SecantusDB on our storage and port, and holds our
        instance id. A state file from before a reboot (or an older Chorus) fails this."""
        if not state.instance_id or not _port_open(state.port):
            return False
        if _proc_available():
            if not state.server.is_running():
                return False
            argv = command_line(state.pid) or []
            expected = (["--port", str(state.port)], ["--storage-path", str(self._storage())])
            if not any("secantusd" in part for part in argv[:2]) or not all(
                _has_option(argv, option) for option in expected
            ):
                return False
        elif not is_alive(state.pid):
            return False
        return _read_marker(state.port) == state.instance_id

    def start(self) -> str:
        """Blocking: reuse or start the server and return its URL."""
        make_private_dir(self.data_dir)
        with _locked(self.data_dir):
            state = self._read_state()
            if state is not None and self._is_ours(state):
                if state.owner.is_running() or (not _proc_available() and is_alive(state.owner_pid)):
                    _log.info("Using the embedded database already running on port %d", state.port)
                else:
                    # Its owner died without stopping it: adopt it, so it is stopped on our exit.
                    me = ProcessIdentity.of(os.getpid())
                    state = EmbeddedState(
                        pid=state.pid,
                        port=state.port,
                        owner_pid=me.pid,
                        instance_id=state.instance_id,
                        started=state.started,
                        owner_started=me.started,
                        boot=state.boot,
                    )
                    self._write_state(state)
                    self.owned = True
                    _log.info("Adopted the orphaned embedded database on port %d", state.port)
                self._state = state
                return state.url
            if state is not None:
                _log.warning(
                    "%s names process %d on port %d, which is not the embedded database we started "
                    "(stale after a reboot or restart?): ignoring it, starting a new one",
                    STATE_FILE, state.pid, state.port,
                )  # fmt: skip
            self._spawn()
            return self.url

    def _spawn(self) -> None:
        port = _free_port()
        storage = self._storage()
        make_private_dir(storage)
        log_path = self.data_dir / "embedded-db.log"
        command = [
            *_server_command(),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--storage-path", str(storage),
            "--log-level", "WARNING",
        ]  # fmt: skip
        _log.info("Starting the embedded database (SecantusDB) on 127.0.0.1:%d, data in %s", port, storage)
        with os.fdopen(_open_private(log_path, os.O_WRONLY | os.O_APPEND), "ab") as log_file:
            # Its own session: a Ctrl-C meant for us must not kill it before we have shut down.
            # umask: the database files it creates are private too.
            self._process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=0o077,
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
        instance_id = secrets.token_hex(16)
        try:
            _write_marker(port, instance_id)
        except PyMongoError as exc:
            self._terminate()
            raise EmbeddedDatabaseError(f"the embedded database does not answer: {exc}") from None
        server, me = ProcessIdentity.of(self._process.pid), ProcessIdentity.of(os.getpid())
        self._state = EmbeddedState(
            pid=server.pid,
            port=port,
            owner_pid=me.pid,
            instance_id=instance_id,
            started=server.started,
            owner_started=me.started,
            boot=server.boot,
        )
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
            # Adopted: not our child. Signal it only if it is still the very process we verified
            # (a pid is reused as soon as its process is gone).
            server = self._state.server
            if not server.is_running():
                _log.warning(
                    "Not stopping process %d: it is no longer (or cannot be shown to be) the embedded "
                    "database this process adopted",
                    server.pid,
                )
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while server.is_running() and time.monotonic() < deadline:
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


def _optional_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _has_option(argv: list[str], option: list[str]) -> bool:
    """`argv` holds `option[0]` immediately followed by `option[1]`."""
    return any(argv[i : i + 2] == option for i in range(len(argv) - 1))
