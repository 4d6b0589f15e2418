"""Where an idle worker's event loop spends its time: every callback the loop runs, timed.

Installed by benchmarks/counted_serve.py when `CHORUS_LOOP_CENSUS` is set (the periodic
benchmark's census window). uvloop's handles are C objects, so the service then runs on the
stdlib asyncio loop, with the pure-Python `Task` and `Future`: a handle's callback then names its
task's coroutine and where it was waiting ("task Balancer._run @ Event.wait"), instead of an
anonymous C step. Every handle's run is timed, the loop's iterations are counted, and the garbage
collector's passes are timed by generation (`gc.callbacks`).

That loop is slower than uvloop and the timing adds a few microseconds a callback: read the
shares and the rates, not the absolute cost.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import asyncio.futures
import asyncio.tasks
import gc
import time
from collections import Counter, defaultdict
from typing import Any

import uvicorn


class Census:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self.iterations = 0
        self.gc_seconds: dict[str, float] = defaultdict(float)  # by generation, "0", "1", "2"
        self._gc_started = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"at": time.monotonic(), "iterations": self.iterations, "calls": dict(self.calls),
                "seconds": dict(self.seconds), "gc_seconds": dict(self.gc_seconds)}  # fmt: skip

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_seconds[str(info.get("generation"))] += time.perf_counter() - self._gc_started


def _innermost(coro: Any) -> Any:
    """The coroutine at the bottom of `coro`'s await chain: where the task waits."""
    while True:
        awaited = getattr(coro, "cr_await", None)
        if awaited is None or not hasattr(awaited, "cr_code"):
            return coro
        coro = awaited


def describe(callback: Any) -> str:
    """A stable name for what a handle runs: a task's coroutine (and where it waited), or the
    callback's qualified name."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro: Any = owner.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        inner = _innermost(coro)
        if inner is not coro and hasattr(inner, "cr_code"):
            return f"task {name} @ {inner.cr_code.co_qualname}"
        return f"task {name}"
    if owner is not None:
        return f"{type(owner).__module__}.{type(owner).__qualname__}.{getattr(callback, '__name__', '?')}"
    function = getattr(callback, "func", callback)  # functools.partial
    return (
        f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__name__)}"
    )


def install() -> Census:
    """Patch asyncio and uvicorn (before the service builds its loop); returns the census."""
    census = Census()
    # Pure-Python tasks and futures: their steps are bound methods naming the task.
    asyncio.tasks.Task = asyncio.Task = asyncio.tasks._PyTask  # type: ignore[misc]  # pyright: ignore
    asyncio.futures.Future = asyncio.Future = asyncio.futures._PyFuture  # type: ignore[misc]  # pyright: ignore
    run_handle = asyncio.events.Handle._run  # pyright: ignore[reportPrivateUsage]

    def timed_run(handle: asyncio.events.Handle) -> None:
        started = time.perf_counter()
        try:
            run_handle(handle)
        finally:
            what = describe(handle._callback)  # type: ignore[attr-defined]  # pyright: ignore
            census.calls[what] += 1
            census.seconds[what] += time.perf_counter() - started

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]  # pyright: ignore
    loop_class = asyncio.base_events.BaseEventLoop
    run_once = loop_class._run_once  # type: ignore[attr-defined]  # pyright: ignore

    def counted_run_once(loop: asyncio.base_events.BaseEventLoop) -> None:
        census.iterations += 1
        run_once(loop)

    loop_class._run_once = counted_run_once  # type: ignore[method-assign]  # pyright: ignore
    # `chorus serve` builds its loop from uvicorn's config ("auto": uvloop when installed).
    uvicorn.Config.get_loop_factory = lambda self: asyncio.new_event_loop  # type: ignore[method-assign,assignment]  # pyright: ignore
    gc.callbacks.append(census.on_gc)
    return census


def rates(before: dict[str, Any], after: dict[str, Any], *, top: int = 25) -> dict[str, Any]:
    """What the loop did between two snapshots, per second: its `top` callbacks by CPU time."""
    elapsed = after["at"] - before["at"]
    rows: list[dict[str, Any]] = []
    for what, seconds in after["seconds"].items():
        calls = after["calls"][what] - before["calls"].get(what, 0)
        spent = seconds - before["seconds"].get(what, 0.0)
        if calls > 0:
            rows.append({"what": what, "ms_per_s": spent / elapsed * 1000, "calls_per_s": calls / elapsed,
                         "us_per_call": spent / calls * 1e6})  # fmt: skip
    rows.sort(key=lambda row: row["ms_per_s"], reverse=True)
    gc_ms = {
        gen: (s - before["gc_seconds"].get(gen, 0.0)) / elapsed * 1000
        for gen, s in after["gc_seconds"].items()
    }
    return {"elapsed_s": elapsed, "iterations_per_s": (after["iterations"] - before["iterations"]) / elapsed,
            "callbacks_ms_per_s": sum(row["ms_per_s"] for row in rows),
            "callbacks_per_s": sum(row["calls_per_s"] for row in rows),
            "gc_ms_per_s": dict(sorted(gc_ms.items())), "top": rows[:top]}  # fmt: skip
