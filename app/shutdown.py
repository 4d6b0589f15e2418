"""Bounded waits for shutting things down: a stuck piece is abandoned and logged, never waited
for forever. (`asyncio.wait_for` waits for a cancelled task to finish cancelling; a read that
cannot be interrupted would then hang a bot's stop, and with it the whole shutdown.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

_log = logging.getLogger(__name__)

# How long a background loop's stop waits for its cancelled task to end before abandoning it
# (logged): a cancelled task ends at its next await, so this is only ever reached by a task that
# does not stop (a swallowed cancellation; see app.wait_for), which must not hang the shutdown.
STOP_WAIT = 5.0


async def run_bounded(work: Coroutine[Any, Any, Any], timeout: float, *, what: str) -> bool:
    """Run `work` for at most `timeout` seconds; returns whether it finished. Errors are logged."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        _log.warning("%s did not finish within %.0fs; abandoned", what, timeout)
        return False
    if not task.cancelled() and (error := task.exception()) is not None:
        _log.warning("%s failed: %r", what, error)
    return True


async def cancel_bounded(tasks: Sequence[asyncio.Task[Any] | None], timeout: float, *, what: str) -> bool:
    """Cancel the tasks and wait at most `timeout` seconds for them to end."""
    pending = {task for task in tasks if task is not None and not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=timeout)
    if pending:
        _log.warning("%s: %d task(s) did not stop within %.0fs; abandoned", what, len(pending), timeout)
    return not pending


# What is left of a stop after the bots' deadline (SHUTDOWN_TIMEOUT): the batched writes, the
# HTTP server's stop, the loop cancelling what remains, the interpreter joining its threads.
EXIT_GRACE = 15.0
EXIT_FORCED = 3  # the exit code of a stop that outlived its deadline and was ended by force


class ExitDeadline:
    """Ends the process by force when a stop outlives `seconds` (armed when the stop begins).

    Whatever holds a stopping process (a task that ignores its cancellation, an executor thread,
    a close that never returns), the process exits: a supervisor waiting for it would otherwise
    kill it later, without the log line saying why. A daemon thread, so it holds nothing."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.name = "exit-deadline"
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        _log.error(
            "The stop did not end within %.0fs (SHUTDOWN_TIMEOUT and %.0fs for the rest); exiting now "
            "with code %d, leaving what was still running to the exit",
            self.seconds,
            EXIT_GRACE,
            EXIT_FORCED,
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(EXIT_FORCED)
