"""`chorus serve` under a profiler, steered by signals from the harness.

    python -m benchmarks.profiled_serve MODE OUT

MODE is one of:

- ``startup``: pyinstrument samples the main thread from the first line (imports included);
  SIGUSR1 stops it and writes the profile (used once every bot is ready).
- ``window``: SIGUSR1 starts pyinstrument, SIGUSR2 stops it and writes the profile to OUT.1,
  the next window to OUT.2, ... (used around HTTP loads).
- ``tracemalloc``: Python allocations are traced from the first line; SIGUSR1 writes a snapshot
  grouped by source file (used once the fleet is idle).

The profile is written to OUT as JSON (``{"text": ..., "self": [...]}`` for pyinstrument,
``{"traced": ..., "by_file": [...]}`` for tracemalloc), which benchmarks.profiles summarises.
Sampling is wall-clock: time the event loop spends waiting shows up as the loop's own frames.
"""

from __future__ import annotations

import json
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

PROFILE_INTERVAL = 0.001


def _write(out: Path, document: dict[str, Any]) -> None:
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    partial.replace(out)


# Functions whose subtree time the report shows: discord.py's hooks and the phases of a start.
WATCHED_FUNCTIONS = (
    "setup_hook",
    "login",
    "connect",
    "before_identify_hook",
    "load_extension",
    "_guild_sync_loop",
    "_write_and_read_logs",
    "statuses",
    "serialize_response",
)
TEXT_LINES = 160


def _package(frame: Any) -> str:
    path = str(frame.file_path_short or frame.file_path or "")
    if path.startswith("<frozen importlib"):
        return "importlib"
    if path.startswith("<"):
        return path
    parts = path.replace("\\", "/").split("/")
    if parts[0] == "app" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def _walk(root: Any) -> dict[str, Any]:
    """Own time by package and by function, time under watched functions and under imports."""
    by_package: dict[str, float] = {}
    by_function: dict[str, float] = {}
    under: dict[str, float] = dict.fromkeys(("imports", *WATCHED_FUNCTIONS), 0.0)
    # (frame, owner) where owner is the nearest real Python frame (built-ins and [self] count for it),
    # and the names already counted on this path (so recursion is not counted twice).
    stack: list[tuple[Any, Any, frozenset[str]]] = [(root, root, frozenset())]
    while stack:
        frame, parent_owner, counted = stack.pop()
        path = str(frame.file_path or "")
        real = not frame.is_synthetic and not path.startswith("<built-in")
        owner = frame if real else parent_owner
        name = str(frame.function)
        key = "imports" if _is_import(frame) else name if name in WATCHED_FUNCTIONS else None
        if key is not None and key not in counted:
            under[key] += float(frame.time)
            counted = counted | {key}
        own = float(frame.time) - sum(float(c.time) for c in frame.children)
        if own > 0:
            package = _package(owner)
            by_package[package] = by_package.get(package, 0.0) + own
            label = f"{owner.function} ({owner.file_path_short}:{owner.line_no})"
            by_function[label] = by_function.get(label, 0.0) + own
        stack.extend((child, owner, counted) for child in frame.children)

    def ranked(table: dict[str, float], limit: int) -> list[dict[str, Any]]:
        top = sorted(table.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [{"name": n, "seconds": round(s, 4)} for n, s in top]

    return {
        "by_package": ranked(by_package, 25),
        "by_function": ranked(by_function, 25),
        "under": {k: round(v, 4) for k, v in under.items()},
    }


def _is_import(frame: Any) -> bool:
    return str(frame.function) == "_find_and_load" and "importlib" in str(frame.file_path or "")


def _pyinstrument_document(profiler: Any) -> dict[str, Any]:
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if session is None or root is None:
        return {"text": "", "duration": 0.0, "cpu": 0.0, "by_package": [], "by_function": [], "under": {}}
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    return {
        "text": "\n".join(text.splitlines()[:TEXT_LINES]),
        "duration": round(float(session.duration), 4),
        "cpu": round(float(session.cpu_time), 4),
        "samples": int(session.sample_count),
        **_walk(root),
    }


def _install_pyinstrument(mode: str, out: Path) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=PROFILE_INTERVAL, async_mode="disabled")

    def start(signum: int, frame: FrameType | None) -> None:
        if not profiler.is_running:
            profiler.start()

    windows = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal windows
        if profiler.is_running:
            profiler.stop()
            windows += 1
            target = out if mode == "startup" else out.with_name(f"{out.name}.{windows}")
            _write(target, _pyinstrument_document(profiler))

    if mode == "startup":
        profiler.start()
        signal.signal(signal.SIGUSR1, stop)
    else:
        signal.signal(signal.SIGUSR1, start)
        signal.signal(signal.SIGUSR2, stop)


def _install_tracemalloc(out: Path) -> None:
    tracemalloc.start(1)

    def dump(signum: int, frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("filename")
        traced, peak = tracemalloc.get_traced_memory()
        by_file = [{"file": s.traceback[0].filename, "bytes": s.size, "blocks": s.count} for s in stats]
        _write(out, {"traced": traced, "peak": peak, "by_file": by_file})

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in {"startup", "window", "tracemalloc"}:
        sys.exit("usage: python -m benchmarks.profiled_serve startup|window|tracemalloc OUT")
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "tracemalloc":
        _install_tracemalloc(out)
    else:
        _install_pyinstrument(mode, out)
    from app.cli import main as chorus_main  # imported after the profiler started: imports count

    sys.argv = ["chorus", "serve"]
    chorus_main()


if __name__ == "__main__":
    main()
