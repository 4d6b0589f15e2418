"""`chorus db`: the embedded database in the foreground, until Ctrl-C or SIGTERM.

It reuses `EmbeddedDatabase`, so the server it starts is recorded in `DATA_DIR` and every other
`chorus` command with the same `DATA_DIR` (serve, seed, ...) uses it instead of starting its own.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import yarl

from app.embedded import EmbeddedDatabase

__all__ = ("AlreadyRunning", "DatabaseDied", "run_foreground")

_log = logging.getLogger(__name__)

_LIVENESS_INTERVAL = 1.0


class AlreadyRunning(RuntimeError):
    """Another live `chorus` process owns the embedded database of this DATA_DIR."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class DatabaseDied(RuntimeError):
    """The embedded database stopped while we were serving it."""


def _reachable(url: str) -> bool:
    parsed = yarl.URL(url)
    try:
        with socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 27017), timeout=1.0):
            return True
    except OSError:
        return False


def run_foreground(database: EmbeddedDatabase, *, on_ready: Callable[[str], None]) -> None:
    """Start the server (or adopt one whose owner died), call `on_ready` with its URL, block
    until SIGINT/SIGTERM, then stop it.

    Raises `AlreadyRunning` when another live process owns it (nothing to run here), and
    `DatabaseDied` if the server exits on its own.
    """
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()  # only this: logging from a signal handler can deadlock on the handler's lock

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = database.start()
        if not database.owned:
            raise AlreadyRunning(url)
        try:
            on_ready(url)
            while not stop.wait(_LIVENESS_INTERVAL):
                if not _reachable(url):
                    log = database.data_dir / "embedded-db.log"
                    raise DatabaseDied(f"the embedded database stopped on its own; see {log}")
        finally:
            database.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
