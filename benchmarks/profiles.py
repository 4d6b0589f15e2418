"""Profiles that explain the numbers: where the start-up time, the HTTP time and the memory go.

- Start-up: `chorus serve` with N bots under pyinstrument (wall-clock sampling of the main
  thread, imports included) until every bot is ready.
- HTTP: pyinstrument around a saturating load of `/health`, then of `/bots`.
- Memory: tracemalloc with 1 bot and with N bots, idle; the difference per additional bot,
  grouped by source file, says which code holds the memory each bot adds.

The profilers slow Python code down (pyinstrument several-fold, tracemalloc more): the shares
are what to read, not the absolute times.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import site
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.http_api import run_load
from benchmarks.processes import REPO, read_json_when_written, rss_bytes
from benchmarks.service import (
    ChorusProcess,
    ServiceOptions,
    drop_database,
    new_database_name,
    seed_bots,
)
from benchmarks.targets import Target, mib

NAME = "profiles"
SIGNIFICANT = 0.1  # a phase above this share of the profile gets a sentence in the report
TITLE = "Profiles"

PHASES = (
    ("imports", "imports (`import` statements, all modules)"),
    ("login", "discord.py `login()`: REST login, then `setup_hook`"),
    ("setup_hook", "`setup_hook` (per bot: the app's extensions and services)"),
    ("load_extension", "`load_extension` (inside `setup_hook`)"),
    ("connect", "discord.py `connect()`: gateway, READY, events"),
    ("before_identify_hook", "`before_identify_hook` (pacing and the in-memory identify budget)"),
    ("_write_and_read_logs", "`IdentifyLogBook._write_and_read_logs` (every bot's IDENTIFY log, batched)"),
    ("_guild_sync_loop", "`_guild_sync_loop` (guild records written after READY)"),
    ("statuses", "`BotManager.statuses` (the harness polling `/health` every 20 ms)"),
)


def run(ctx: BenchContext) -> dict[str, Any]:
    if not ctx.config.profile:
        return {"status": "skipped", "reason": "profiles were not requested"}
    if importlib.util.find_spec("pyinstrument") is None:
        return {"status": "skipped", "reason": "pyinstrument is not installed (pip install -e '.[bench]')"}
    bots = min(ctx.config.profile_bots, len(ctx.world.bots))
    ctx.progress(f"profile: start-up of {bots} bots under pyinstrument")
    startup = profile_startup(ctx, bots)
    ctx.progress(f"profile: HTTP with {bots} bots under pyinstrument")
    http = profile_http(ctx, bots)
    ctx.progress(f"profile: memory of 1 and {bots} bots under tracemalloc")
    memory = profile_memory(ctx, bots)
    return {"status": "done", "bots": bots, "startup": startup, "http": http, "memory": memory}


def _start(
    ctx: BenchContext, bots: int, database: str, mode: str, out: Path, grt: float | None
) -> ChorusProcess:
    ctx.wait_for_quiet()
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots])
    options = ServiceOptions(guild_ready_timeout=grt, profile=mode, profile_out=out)
    service = ctx.start_chorus(
        database, options, shown_as=f"profile ({mode}): chorus serve under the profiler"
    )
    return service


def _read(path: Path, service: ChorusProcess) -> dict[str, Any]:
    return read_json_when_written(path, what=f"the profile {path.name}", timeout=120, interval=0.1,
                                  watch=[service.child])  # fmt: skip


def profile_startup(ctx: BenchContext, bots: int) -> dict[str, Any]:
    database = new_database_name("profile_startup")
    out = ctx.work_dir / f"{database}.json"
    service = _start(ctx, bots, database, "startup", out, None)
    try:
        service.wait_http(timeout=120)
        ready = service.wait_ready(bots, timeout=120 + bots)
        os.kill(service.child.pid, signal.SIGUSR1)
        document = _read(out, service)
    finally:
        ctx.children.stop(service.child)
        drop_database(ctx.database_url, database)
    document["ready_s"] = round(ready - service.child.started_at, 3)
    return document


def profile_http(ctx: BenchContext, bots: int) -> dict[str, Any]:
    database = new_database_name("profile_http")
    out = ctx.work_dir / f"{database}.json"
    service = _start(ctx, bots, database, "window", out, 0.1)
    windows: dict[str, Any] = {}
    try:
        service.wait_http(timeout=120)
        service.wait_ready(bots, timeout=120 + bots)
        time.sleep(1.0)
        for index, path in enumerate(ctx.config.http_paths, start=1):
            ctx.wait_for_quiet()
            os.kill(service.child.pid, signal.SIGUSR1)
            load = run_load(ctx, service, path, saturate=True, quiet=False)
            os.kill(service.child.pid, signal.SIGUSR2)
            document = _read(out.with_name(f"{out.name}.{index}"), service)
            document["load"] = {
                k: load.get(k) for k in ("throughput", "latency_ms", "server_cpu_share", "errors")
            }
            windows[path] = document
    finally:
        ctx.children.stop(service.child)
        drop_database(ctx.database_url, database)
    return windows


def _tracemalloc_snapshot(ctx: BenchContext, bots: int) -> dict[str, Any]:
    database = new_database_name(f"profile_memory{bots}")
    out = ctx.work_dir / f"{database}.json"
    service = _start(ctx, bots, database, "tracemalloc", out, 0.1)
    try:
        service.wait_http(timeout=180)
        service.wait_ready(bots, timeout=180 + 2 * bots)
        time.sleep(ctx.config.settle)
        rss = rss_bytes(service.child.pid)
        os.kill(service.child.pid, signal.SIGUSR1)
        document = _read(out, service)
    finally:
        ctx.children.stop(service.child)
        drop_database(ctx.database_url, database)
    document["rss"] = rss
    return document


def _short(path: str) -> str:
    prefixes = sorted(
        {*site.getsitepackages(), str(REPO), sys.prefix, sys.base_prefix}, key=len, reverse=True
    )
    for prefix in prefixes:
        if path.startswith(prefix + "/"):
            return path[len(prefix) + 1 :].removeprefix("lib/python3.11/").removeprefix("lib/python3.12/")
    return path


def profile_memory(ctx: BenchContext, bots: int) -> dict[str, Any]:
    one = _tracemalloc_snapshot(ctx, 1)
    many = _tracemalloc_snapshot(ctx, bots)
    added = max(bots - 1, 1)
    before = {row["file"]: row["bytes"] for row in one["by_file"]}
    after = {row["file"]: row["bytes"] for row in many["by_file"]}
    per_file = {f: (after.get(f, 0) - before.get(f, 0)) / added for f in {*before, *after}}
    top = sorted(per_file.items(), key=lambda item: item[1], reverse=True)[:20]
    return {
        "bots": bots,
        "traced_one": one["traced"],
        "traced_many": many["traced"],
        "rss_one": one["rss"],
        "rss_many": many["rss"],
        "traced_per_bot": (many["traced"] - one["traced"]) / added,
        "rss_per_bot": (many["rss"] - one["rss"]) / added,
        "top_files_per_bot": [{"file": _short(f), "bytes_per_bot": round(b)} for f, b in top],
        "top_files_one_bot": [{"file": _short(r["file"]), "bytes": r["bytes"]} for r in one["by_file"][:15]],
    }


def targets(result: dict[str, Any]) -> list[Target]:
    return []


# -- report ---------------------------------------------------------------------------------------


def _package_table(document: dict[str, Any], limit: int = 10) -> list[str]:
    duration = float(document.get("duration") or 0) or 1.0
    lines = ["| own time in | s | share |", "|---|---:|---:|"]
    for row in document.get("by_package", [])[:limit]:
        lines.append(f"| `{row['name']}` | {row['seconds']:.3f} | {row['seconds'] / duration * 100:.1f}% |")
    return lines


def _function_table(document: dict[str, Any], limit: int = 12) -> list[str]:
    duration = float(document.get("duration") or 0) or 1.0
    lines = ["| own time in function | s | share |", "|---|---:|---:|"]
    for row in document.get("by_function", [])[:limit]:
        lines.append(f"| `{row['name']}` | {row['seconds']:.3f} | {row['seconds'] / duration * 100:.1f}% |")
    return lines


def _package_of(path: str) -> str:
    parts = path.split("/")
    depth = 3 if parts[0] == "app" and len(parts) > 3 else 2 if parts[0] in {"app", "discord"} else 1
    return "/".join(parts[: min(depth, len(parts) - 1)] or parts[:1])


def _by_package(rows: list[dict[str, Any]]) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for row in rows:
        package = _package_of(row["file"])
        totals[package] = totals.get(package, 0.0) + float(row["bytes_per_bot"])
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


def _startup_notes(startup: dict[str, Any], bots: int) -> list[str]:
    """What the shares say, in words, when a share is large enough to matter."""
    duration = float(startup.get("duration") or 0) or 1.0
    under: dict[str, float] = startup.get("under", {})
    share = {key: under.get(key, 0.0) / duration for key in under}
    notes: list[str] = []
    notes.append(f"- Imports: {share.get('imports', 0) * 100:.0f}% of the profile, paid once whatever N is.")
    if share.get("load_extension", 0) > SIGNIFICANT:
        notes.append(
            f"- `load_extension`: {share['load_extension'] * 100:.0f}% of the profile, "
            f"{under['load_extension'] / bots * 1000:.1f} ms per bot under the profiler. discord.py's "
            "`load_extension` executes the extension module afresh for every bot (`_load_from_module_spec` "
            "→ `exec_module`): each bot re-runs the cogs' class bodies, their app-command decorators and "
            "signature parsing, and keeps its own copy of the modules, classes and command objects."
        )
    database = share.get("_write_and_read_logs", 0) + share.get("_guild_sync_loop", 0)
    if database > SIGNIFICANT:
        notes.append(
            f"- Database work at start: {database * 100:.0f}% of the profile (the IDENTIFY logs, read and "
            "written in batches, then the guild records after READY): PyMongo's asyncio client "
            "spends CPU on every operation, and each bot makes several."
        )
    return notes


def _http_notes(document: dict[str, Any], bots: int) -> list[str]:
    duration = float(document.get("duration") or 0) or 1.0
    statuses = float(document.get("under", {}).get("statuses", 0.0))
    if statuses / duration <= SIGNIFICANT:
        return []
    return [
        f"`BotManager.statuses()` takes {statuses / duration * 100:.0f}% of the profile: every request "
        f"builds a full snapshot of each of the {bots} bots (a copy of its guild list, the sum of its "
        "guilds' member counts, its latency, fields of its Beanie record), so the cost of a request "
        "grows with the fleet.",
        "",
    ]


def _details(summary: str, text: str) -> list[str]:
    return [
        "<details><summary>" + summary + "</summary>",
        "",
        "```text",
        text.strip("\n"),
        "```",
        "",
        "</details>",
    ]


def render(result: dict[str, Any]) -> str:
    if result.get("status") != "done":
        return f"Skipped: {result.get('reason', 'not run')}."
    bots = result["bots"]
    startup = result["startup"]
    duration = float(startup.get("duration") or 0) or 1.0
    lines = [
        "pyinstrument samples the main thread's stack every millisecond (wall clock: time the event loop "
        "waits shows as the loop's own frames, here uvloop's `run`), tracemalloc records Python "
        "allocations. Both slow the process down: read the shares, not the absolute times.",
        "",
        f"### Start-up of {bots} bots (default settings)",
        "",
        f"Under the profiler every bot was ready after {startup['ready_s']:.2f} s; profiled "
        f"{startup['duration']:.2f} s, of which {startup['cpu']:.2f} s on the CPU. "
        "Time spent under each phase "
        "(phases nest: `login` contains `setup_hook`, which contains `load_extension`):",
        "",
        "| phase | s | share of the profile |",
        "|---|---:|---:|",
    ]
    under = startup.get("under", {})
    for key, label in PHASES:
        if key in under:
            lines.append(f"| {label} | {under[key]:.3f} | {under[key] / duration * 100:.1f}% |")
    lines += ["", *_startup_notes(startup, bots)]
    lines += ["", *_package_table(startup), "", *_function_table(startup), ""]
    lines += _details("pyinstrument call tree (start-up)", startup.get("text", ""))
    for path, document in result.get("http", {}).items():
        load = document.get("load", {})
        lines += [
            "",
            f"### `{path}` at saturation, {bots} bots",
            "",
            f"Under the profiler: {load.get('throughput', 0):.0f} req/s, p50 "
            f"{(load.get('latency_ms') or {}).get('p50', 0):.2f} ms.",
            "",
            *_http_notes(document, bots),
            *_package_table(document),
            "",
            *_function_table(document),
            "",
            *_details(f"pyinstrument call tree ({path})", document.get("text", "")),
        ]
    memory = result.get("memory")
    if memory:
        lines += [
            "",
            f"### Memory per additional bot (tracemalloc, 1 against {memory['bots']} idle bots)",
            "",
            f"RSS grows by {memory['rss_per_bot'] / 1024:.0f} KiB per additional bot under tracemalloc "
            f"(which adds its own bookkeeping); the Python allocations it traces grow by "
            f"{memory['traced_per_bot'] / 1024:.0f} KiB per bot. "
            f"With 1 bot, {mib(memory['traced_one'])} MiB of "
            f"Python objects are allocated ({mib(memory['rss_one'])} MiB RSS: the rest is the interpreter, "
            "C extensions and allocator slack).",
            "",
            "| allocated in (source file) | per additional bot (KiB) |",
            "|---|---:|",
        ]
        for row in memory["top_files_per_bot"][:15]:
            lines.append(f"| `{row['file']}` | {row['bytes_per_bot'] / 1024:.1f} |")
        code = next(
            (r for r in memory["top_files_per_bot"][:3] if "importlib._bootstrap_external" in r["file"]), None
        )
        if code is not None:
            lines += [
                "",
                f"`<frozen importlib._bootstrap_external>` holding {code['bytes_per_bot'] / 1024:.0f} KiB "
                "per bot means module code loaded again for every bot: code objects unmarshalled from "
                "the `.pyc` each time a module is executed, as `load_extension` does per bot; the classes, "
                "app-command objects and parsed signatures it re-creates show up under `discord/` and "
                "`inspect.py`.",
            ]
        lines += ["", "The same, by package:", "", "| package | per additional bot (KiB) |", "|---|---:|"]
        for package, size in _by_package(memory["top_files_per_bot"])[:8]:
            lines.append(f"| `{package}` | {size / 1024:.1f} |")
        lines += ["", "Largest holders with 1 bot (mostly module-level code and data):", ""]
        lines += ["| allocated in (source file) | MiB |", "|---|---:|"]
        for row in memory["top_files_one_bot"][:10]:
            lines.append(f"| `{row['file']}` | {mib(row['bytes'], 2)} |")
    return "\n".join(lines)
