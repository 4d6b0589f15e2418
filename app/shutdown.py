"""Bounded waits for shutting things down: a stuck piece is abandoned and logged, never waited
for forever. (`asyncio.wait_for` waits for a cancelled task to finish cancelling; a read that
cannot be interrupted would then hang a bot's stop, and with it the whole shutdown.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

_log = logging.getLogger(__name__)


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
