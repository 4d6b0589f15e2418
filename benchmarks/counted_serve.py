"""`chorus serve` with every database command it sends counted (a PyMongo command listener).
With CHORUS_LOOP_CENSUS set, its event loop's callbacks are timed too (benchmarks/loop_census.py),
and the SIGUSR1 document carries a "census" snapshot.

    python benchmarks/counted_serve.py OUT

Run as a script (not `-m`), so the `app` package comes from PYTHONPATH: this tree, or the
checkout of a baseline. SIGUSR1 writes ``{"commands": N, "by_name": {...}, "by_collection": {...},
"statements_by_collection": {...}}`` to OUT: the commands started since the process began (one per
round trip to the database), and the write commands' statements (one per document written). SIGUSR2
appends every thread's stack and every asyncio task's to OUT with the suffix `.stacks`.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import threading
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType

from pymongo import monitoring

# A write command's statements: one per document it inserts, updates or deletes (a bulk write is one
# command of many statements; the database does the work of each).
_STATEMENTS = {"insert": "documents", "update": "updates", "delete": "deletes"}


class _Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()
        self.by_collection: Counter[str] = Counter()  # "update bot_identify_log": N
        self.statements_by_collection: Counter[str] = Counter()  # write statements, same keys

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        self.by_name[name] += 1
        collection = event.command.get(name)
        if isinstance(collection, str):
            key = f"{name} {collection}"
            self.by_collection[key] += 1
            if name in _STATEMENTS:
                self.statements_by_collection[key] += len(event.command.get(_STATEMENTS[name]) or ())
            elif name == "findAndModify":
                self.statements_by_collection[key] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _dump_stacks(path: Path) -> None:
    """Where a process that does not exit is (debugging): every thread's stack, and every asyncio
    task of the running loop with where it waits, appended to `path`."""
    lines: list[str] = []
    frames = sys._current_frames()  # pyright: ignore[reportPrivateUsage]
    for thread in threading.enumerate():
        lines.append(f"--- thread {thread.name!r} daemon={thread.daemon} ident={thread.ident}")
        frame = frames.get(thread.ident or -1)
        if frame is not None:
            lines += traceback.format_stack(frame)
    loop = asyncio._get_running_loop()  # pyright: ignore[reportPrivateUsage]
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    lines.append(f"=== {len(tasks)} asyncio task(s)" if loop is not None else "=== no running loop")
    for task in tasks:
        buffer = io.StringIO()
        task.print_stack(file=buffer)
        lines.append(buffer.getvalue())
    with path.open("a") as file:
        file.write("\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/counted_serve.py OUT")
    out = Path(sys.argv[1])
    counter = _Counter()
    monitoring.register(counter)  # every client created from now on reports to it
    census = None
    if os.environ.get("CHORUS_LOOP_CENSUS"):
        # This tree's benchmarks only (PYTHONPATH is this tree's when the census is asked for).
        from benchmarks import loop_census

        census = loop_census.install()

    def dump(signum: int, frame: FrameType | None) -> None:
        partial = out.with_suffix(".partial")
        by_name = dict(counter.by_name)
        document: dict[str, object] = {
            "commands": sum(by_name.values()),
            "by_name": by_name,
            "by_collection": dict(counter.by_collection),
            "statements_by_collection": dict(counter.statements_by_collection),
        }
        if census is not None:
            document["census"] = census.snapshot()
        partial.write_text(json.dumps(document))
        partial.replace(out)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, lambda signum, frame: _dump_stacks(out.with_suffix(".stacks")))
    from app.cli import main as chorus_main

    sys.argv = ["chorus", "serve"]
    chorus_main()


if __name__ == "__main__":
    main()
