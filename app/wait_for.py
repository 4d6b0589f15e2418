"""Python 3.12's `asyncio.wait_for` on Python 3.11: a cancellation is never lost.

On 3.11, `asyncio.wait_for(work, timeout)` returns `work`'s result when the task running it is
cancelled in the same loop iteration as `work` completes: the cancellation is swallowed
(CPython gh-86296, fixed in 3.12 by rewriting `wait_for` on top of `asyncio.timeout`). PyMongo's
asyncio driver calls `wait_for` on every socket write, so a task cancelled during a database
operation kept running about once in 15 cancellations (measured: 203 of 3,000 `find_one`s
cancelled at a random moment on 3.11.7; 0 of 2,000 on 3.12.1). A background loop that survives
its cancellation holds up whatever awaits it: the fleet's shutdown waited forever on the invite
sweeper, and a bot being started kept its gateway handshake alive past the stop.

`install()` puts 3.12's implementation in place of 3.11's, for the process: `asyncio.wait_for`
and every module that imported the function by name (PyMongo's `pymongo.lock` does). On 3.12
and later it does nothing. It is idempotent, and called before the database client exists
(`app.runtime.open_store`) and by the test suite's conftest.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

_T = TypeVar("_T")

NEEDED = sys.version_info < (3, 12)


async def wait_for(fut: Awaitable[_T], timeout: float | None) -> _T:
    """`asyncio.wait_for` as Python 3.12 implements it (Lib/asyncio/tasks.py)."""
    if timeout is not None and timeout <= 0:
        # No time at all: the result if it is already there, else cancel and time out.
        future = asyncio.ensure_future(fut)
        if future.done():
            return future.result()
        future.cancel()
        await asyncio.wait({future})
        try:
            return future.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError from exc
    async with asyncio.timeout(timeout):
        return await fut


def install() -> bool:
    """Replace 3.11's `wait_for` everywhere it is reachable; True if it was (or already is) replaced."""
    if not NEEDED:
        return False
    original: Any = asyncio.tasks.wait_for
    if original is wait_for:
        return True
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)  # not getattr: a module's __getattr__ may act
        if namespace is not None and namespace.get("wait_for") is original:
            namespace["wait_for"] = wait_for
    return True
