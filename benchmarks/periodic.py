"""Benchmark 6, periodic work (issue 14 items 1-2): an idle fleet, and snapshot volume with players.

Each measurement runs twice in the same run: on this tree ("scheduler") and on a baseline checkout
(`--periodic-baseline`, "before (REF)"; by default the code before the worker scheduler, per-bot
loops), put first on PYTHONPATH of the same virtualenv, so the ratios compare like with like on a
machine whose load changes.

- **Idle fleet**: `chorus serve` with N bots ready, each connected to one fake Lavalink node, no
  player anywhere. After its start-up work is done (CPU below 10% for a second, then
  `--periodic-settle` seconds after ready: app/heap.py settles the heap once the bots are still,
  a one-off; then `--periodic-quiet` seconds with no write but the worker's heartbeat, as the
  status publisher's first full sweeps publish what start-up left; then CPU below 10% again), the
  harness reads the service's CPU time and the database's write counters (`serverStatus`
  opcounters: write commands, on SecantusDB; and the service's own write commands and the
  documents they wrote, by collection, from a PyMongo command listener) over `--runs` windows of
  `--periodic-window` seconds (60: an idle fleet's work comes in bursts, gateway heartbeats every
  ~41 s, Lavalink's `stats` every 60 s, so shorter windows are mostly noise); medians are
  reported, with each window's resident memory and the share of the machine's CPU other processes
  used meanwhile (a busy machine inflates CPU time). The same windows over as many bare discord.py
  clients (benchmarks/bare_clients.py, no Chorus) give the floor: discord.py's own idle cost.
- **Loop census**: one more idle fleet of this tree, one window of `--periodic-census` seconds,
  on the stdlib asyncio loop with every callback timed (benchmarks/loop_census.py): what the
  idle loop runs, by CPU time, and the garbage collector's share.
- **Snapshot volume**: `benchmarks/snapshot_volume.py` drives each version's snapshot keeper
  against the database with P players of 50 queued tracks (simulated clock: one sweep per
  `SNAPSHOT_INTERVAL`, every player playing, 3-minute tracks), and sums the BSON bytes of the
  write commands (a PyMongo command listener) after the first sweep, which writes every player
  whole in both versions.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks import loop_census
from benchmarks.context import BenchContext
from benchmarks.processes import (
    PYTHON,
    REPO,
    BenchError,
    Child,
    base_env,
    cpu_reading,
    cpu_seconds,
    foreign_cpu_share,
    read_json_when_written,
    rss_bytes,
    wait_until_idle,
)
from benchmarks.service import (
    ChorusProcess,
    ServiceOptions,
    add_checkout,
    drop_database,
    new_database_name,
    operation_count,
    remove_checkout,
    seed_bots,
    start_fake_lavalink,
)
from benchmarks.targets import Target, verdict

NAME = "periodic"
TITLE = "Periodic work: an idle fleet, and snapshot volume with players"
IDLE_CPU_GOAL = 0.01  # share of one core
GOAL_BOTS = 1000


def _database_writes(url: str) -> int:
    return operation_count(url, "insert", "update", "delete")


_WRITE_COMMANDS = ("insert", "update", "delete", "findAndModify")
HEARTBEAT = "update workers"  # the worker's liveness heartbeat (issue 13): one per interval per worker
WRITES_QUIET_MAX = 240.0  # the wait for --periodic-quiet lasts at most this long after --periodic-settle
WRITES_POLL = 5.0


def _report_now(child: Child, out: Path, what: str) -> dict[str, Any]:
    """Ask a child that reports on SIGUSR1 (counted_serve.py, bare_clients.py) to write `out` now,
    and read it."""
    out.unlink(missing_ok=True)
    os.kill(child.process.pid, signal.SIGUSR1)
    return read_json_when_written(out, what=what, timeout=60, interval=0.05, watch=[child])


def _counted(service: ChorusProcess, counted: Path | None) -> dict[str, Any]:
    """What the service's benchmarks/counted_serve.py reports now: the database commands it has
    sent so far, by "command collection" ("by_collection"), and its loop census if it runs one;
    empty when it does not count them."""
    return {} if counted is None else _report_now(service.child, counted, "the command count")


def _window(
    ctx: BenchContext, service: ChorusProcess, counted: Path | None, seconds: float
) -> dict[str, Any]:
    """The service's CPU share and the database's writes/s over one window (the server's opcounters,
    and the service's own write commands by collection), with the service's resident memory at its
    end and the share of the machine other processes used meanwhile; and what its loop did, when it
    runs the census."""
    pid = service.child.pid
    ctx.wait_for_quiet()
    first = _counted(service, counted)
    before: dict[str, int] = first.get("by_collection", {})
    machine = cpu_reading(ctx.children)
    cpu, writes, started = cpu_seconds(pid), _database_writes(ctx.database_url), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    window: dict[str, Any] = {"cpu_share": (cpu_seconds(pid) - cpu) / elapsed,
              "db_writes_per_s": (_database_writes(ctx.database_url) - writes) / elapsed,
              "rss_mib": rss_bytes(pid) / 2**20,
              "others_share": foreign_cpu_share(machine, cpu_reading(ctx.children))}  # fmt: skip
    if counted is not None:
        last = _counted(service, counted)
        after: dict[str, int] = last.get("by_collection", {})
        if "census" in first and "census" in last:
            window["census"] = loop_census.rates(first["census"], last["census"])
        sent = {
            name: (n - before.get(name, 0)) / elapsed for name, n in after.items() if n > before.get(name, 0)
        }
        window["commands_per_s"] = sum(sent.values())
        window["writes_by_collection"] = {
            name: rate for name, rate in sorted(sent.items()) if name.split(" ", 1)[0] in _WRITE_COMMANDS
        }
        # Counts, not rates: a one-off bulk write in one window must not vanish in a median.
        before_statements: dict[str, int] = first.get("statements_by_collection", {})
        window["statements_by_collection"] = {
            name: n - before_statements.get(name, 0)
            for name, n in sorted(last.get("statements_by_collection", {}).items())
            if n > before_statements.get(name, 0)
        }
    return window


def _besides_heartbeat(report: dict[str, Any]) -> dict[str, int]:
    """The write statements (documents) by collection in a counted report or a row, without the
    worker's liveness heartbeat."""
    statements: dict[str, int] = report.get("statements_by_collection", {})
    return {name: n for name, n in statements.items() if name != HEARTBEAT}


def _writes_besides_heartbeat(report: dict[str, Any]) -> int:
    """Write statements a counted service has sent so far, not counting its liveness heartbeat."""
    return sum(_besides_heartbeat(report).values())


def _settle(ctx: BenchContext, service: ChorusProcess, counted: Path | None, ready: float) -> str:
    """Wait until the fleet's start-up work is done: `--periodic-settle` seconds after ready (the
    worker settles its heap once its bots are still: app/heap.py, a one-off), and, when the service's
    commands are counted, until it has written nothing but its heartbeat for `--periodic-quiet`
    seconds (longer than a status full sweep, app/bots/fleet/status.py, which publishes what start-up
    left to publish, such as latencies that settled), at most `WRITES_QUIET_MAX` seconds more.
    Returns what the wait saw, for the progress line."""
    settle_at = ready + ctx.config.periodic_settle
    if counted is None:
        time.sleep(max(0.0, settle_at - time.monotonic()))
        return ""
    written, changed_at = -1, time.monotonic()
    while True:
        now = time.monotonic()
        total = _writes_besides_heartbeat(_counted(service, counted))
        if total != written:
            written, changed_at = total, now
        if now >= settle_at and now - changed_at >= ctx.config.periodic_quiet:
            return f", no write but the heartbeat for {now - changed_at:.0f} s"
        if now >= settle_at + WRITES_QUIET_MAX:
            last = now - changed_at
            return f", still writing {WRITES_QUIET_MAX:.0f} s after the settle (last {last:.0f} s ago)"
        time.sleep(WRITES_POLL)


def _idle_fleet(
    ctx: BenchContext, code: Path | None, label: str, *, lavalink: bool = True, census: bool = False
) -> dict[str, Any]:
    bots = ctx.world.bots[: ctx.config.periodic_bots]
    node = start_fake_lavalink(ctx.children, ctx.work_dir, tracks=1) if lavalink else None
    database = new_database_name("periodic")
    seed_bots(ctx.database_url, database, ctx.key, bots)
    try:
        nodes = node.lavalink_nodes if node is not None else ""
        counted = ctx.work_dir / f"{database}-commands.json"
        options = ServiceOptions(guild_ready_timeout=0.1, lavalink_nodes=nodes, code_dir=code,
                                 count_commands=counted, loop_census=census)  # fmt: skip
        service = ctx.start_chorus(database, options, shown_as=f"periodic: chorus serve ({label})")
        try:
            service.wait_http(timeout=120)
            service.wait_ready(len(bots), timeout=900)
            ready = time.monotonic()
            wait_until_idle(service.child.pid)
            quiet = _settle(ctx, service, counted, ready)
            wait_until_idle(service.child.pid)
            settled = time.monotonic() - ready
            ctx.progress(f"  periodic ({label}): {len(bots)} bots ready, idle {settled:.1f} s later{quiet}")
            if census:  # one window: its numbers are shares, not the fleet's cost
                windows = [_window(ctx, service, counted, ctx.config.periodic_census)]
            else:
                windows = [
                    _window(ctx, service, counted, ctx.config.periodic_window) for _ in range(ctx.config.runs)
                ]
        finally:
            ctx.children.stop(service.child)
    finally:
        drop_database(ctx.database_url, database)
        if node is not None:
            ctx.children.stop(node.child)
    window_s = ctx.config.periodic_census if census else ctx.config.periodic_window
    row = {"code": label, "bots": len(bots), "window_s": window_s, "windows": windows,
           "cpu_share": statistics.median(w["cpu_share"] for w in windows),
           "db_writes_per_s": statistics.median(w["db_writes_per_s"] for w in windows),
           "rss_mib": statistics.median(w["rss_mib"] for w in windows),
           "others_share": statistics.median(w["others_share"] for w in windows)}  # fmt: skip
    if all("writes_by_collection" in w for w in windows):
        names = sorted({name for w in windows for name in w["writes_by_collection"]})
        row["commands_per_s"] = statistics.median(w["commands_per_s"] for w in windows)
        row["writes_by_collection"] = {
            name: statistics.median(w["writes_by_collection"].get(name, 0.0) for w in windows)
            for name in names
        }
    if all("statements_by_collection" in w for w in windows):  # every window, added up
        totals: dict[str, int] = {}
        for w in windows:
            for name, n in w["statements_by_collection"].items():
                totals[name] = totals.get(name, 0) + n
        row["statements_by_collection"] = dict(sorted(totals.items()))
    each = ", ".join(f"{w['cpu_share'] * 100:.2f}%" for w in windows)
    ctx.progress(f"  periodic ({label}): {row['cpu_share'] * 100:.2f}% of a core (windows: {each}), "
                 f"{row['db_writes_per_s']:.2f} database writes/s, {row['rss_mib']:.0f} MiB, "
                 f"others {row['others_share'] * 100:.0f}% of the machine")  # fmt: skip
    return row


def _bare_clients(ctx: BenchContext, *, census: bool = False) -> dict[str, Any]:
    """The floor: as many bare discord.py clients (benchmarks/bare_clients.py, no Chorus) on the
    same fake Discord, idle, measured over the same windows; with `census`, over one census
    window, on the stdlib loop with every callback timed."""
    label = "discord.py alone, census (stdlib loop)" if census else "discord.py alone"
    census_out = ctx.work_dir / "bare-census.json"
    bots = ctx.world.bots[: ctx.config.periodic_bots]
    world = ctx.work_dir / "bare-world.json"
    ready = ctx.work_dir / "bare-ready.json"
    document = {"api_base": ctx.world.api_base, "gateway_url": ctx.world.gateway_url,
                "tokens": [bot.token for bot in bots]}  # fmt: skip
    with os.fdopen(os.open(world, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(document, file)  # the fake tokens: for the child only, which deletes it
    argv = [PYTHON, "-m", "benchmarks.bare_clients", str(world), str(ready)]
    env = base_env(CHORUS_LOOP_CENSUS_OUT=str(census_out)) if census else base_env()
    child = ctx.children.start("bare-clients", argv, env=env, cwd=REPO)
    window_s = ctx.config.periodic_census if census else ctx.config.periodic_window
    try:
        read_json_when_written(ready, what="the bare clients to be ready", timeout=900, watch=[child])
        wait_until_idle(child.process.pid)
        ctx.progress(f"  periodic ({label}): {len(bots)} clients ready")
        windows: list[dict[str, Any]] = []
        for _ in range(1 if census else ctx.config.runs):
            ctx.wait_for_quiet()
            first = _report_now(child, census_out, "the loop census") if census else None
            machine = cpu_reading(ctx.children)
            cpu, started = cpu_seconds(child.process.pid), time.monotonic()
            time.sleep(window_s)
            elapsed = time.monotonic() - started
            pid = child.process.pid
            others = foreign_cpu_share(machine, cpu_reading(ctx.children))
            window: dict[str, Any] = {"cpu_share": (cpu_seconds(pid) - cpu) / elapsed, "db_writes_per_s": 0.0,
                      "rss_mib": rss_bytes(pid) / 2**20, "others_share": others}  # fmt: skip
            if first is not None:
                window["census"] = loop_census.rates(first, _report_now(child, census_out, "the loop census"))
            windows.append(window)
    finally:
        world.unlink(missing_ok=True)
        ctx.children.stop(child)
    row = {"code": f"{label} (no Chorus)", "bots": len(bots), "window_s": window_s, "windows": windows,
           **{key: statistics.median(w[key] for w in windows)
              for key in ("cpu_share", "db_writes_per_s", "rss_mib", "others_share")}}  # fmt: skip
    ctx.progress(f"  periodic ({label}): {row['cpu_share'] * 100:.2f}% of a core")
    return row


def _snapshot_volume(ctx: BenchContext, code: Path | None, label: str) -> dict[str, Any]:
    out = ctx.work_dir / f"volume-{label.replace(' ', '-')}.json"
    database = new_database_name("volume")
    env = base_env()
    if code is not None:
        env["PYTHONPATH"] = str(code)
    argv = [PYTHON, str(REPO / "benchmarks" / "snapshot_volume.py"), "--url", ctx.database_url,
            "--database", database, "--players", str(ctx.config.snapshot_players),
            "--bots", str(max(1, ctx.config.snapshot_players // 10)),
            "--sweeps", str(ctx.config.snapshot_sweeps), "--out", str(out)]  # fmt: skip
    ctx.wait_for_quiet()
    # Run as a script from the work directory: `app` comes from PYTHONPATH (this tree or the baseline).
    done = subprocess.run(argv, env=env, cwd=ctx.work_dir, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise BenchError(f"snapshot volume ({label}) failed: {done.stderr[-1500:]}")
    row = json.loads(out.read_text())
    row["code"] = label
    ctx.progress(f"  periodic ({label}): {row['players']} players x {row['queue']} queued: "
                 f"{row['bytes_per_s'] / 1000:.1f} kB/s, {row['writes_per_s']:.1f} writes/s")  # fmt: skip
    return row


def run(ctx: BenchContext) -> dict[str, Any]:
    baseline = add_checkout(ctx.config.periodic_baseline, ctx.work_dir / "baseline", label="periodic",
                            progress=ctx.progress)  # fmt: skip
    variants: list[tuple[Path | None, str]] = [(None, "scheduler")]
    if baseline is not None:
        variants.insert(0, (baseline, f"before ({ctx.config.periodic_baseline})"))
    try:
        idle = [_idle_fleet(ctx, code, label) for code, label in variants]
        # What is left once the periodic work is gone: the connections' own keepalives. Without
        # Lavalink, only the gateway's heartbeats remain.
        idle.append(_idle_fleet(ctx, None, "scheduler, no Lavalink", lavalink=False))
        idle.append(_bare_clients(ctx))
        census = bare_census = None
        if ctx.config.periodic_census > 0:
            census = _idle_fleet(ctx, None, "scheduler, census (stdlib loop)", census=True)
            bare_census = _bare_clients(ctx, census=True)
        volume = [_snapshot_volume(ctx, code, label) for code, label in variants]
    finally:
        if baseline is not None:
            remove_checkout(baseline)
    return {"baseline_ref": ctx.config.periodic_baseline if baseline is not None else None,
            "idle": idle, "volume": volume, "census": census, "bare_census": bare_census}  # fmt: skip


def _current(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(row for row in rows if row["code"] == "scheduler")


def targets(result: dict[str, Any]) -> list[Target]:
    idle = _current(result["idle"])
    measured_at = idle["bots"] >= GOAL_BOTS
    note = "" if measured_at else f"measured at {idle['bots']} bots, not {GOAL_BOTS}"
    targets = [
        Target(f"idle fleet of {GOAL_BOTS} bots < 1% of a core", f"{idle['cpu_share'] * 100:.2f}%",
               verdict(idle["cpu_share"] < IDLE_CPU_GOAL if measured_at else None), note),
        Target(f"idle fleet of {GOAL_BOTS} bots: 0 database writes/s", f"{idle['db_writes_per_s']:.2f}/s",
               verdict(idle["db_writes_per_s"] == 0 if measured_at else None),
               _writes_note(idle) or note),
    ]  # fmt: skip
    if "statements_by_collection" in idle:
        # Documents, not commands: a bulk write of 1,000 updates is one command and 1,000 writes.
        besides = _besides_heartbeat(idle)
        others = sum(besides.values())
        seconds = idle["window_s"] * len(idle["windows"])
        where = "; ".join(f"{name} {n}" for name, n in besides.items())
        targets.append(
            Target(
                f"idle fleet of {GOAL_BOTS} bots: no document written besides the worker's heartbeat",
                f"{others} in {seconds:.0f} s",
                verdict(others == 0 if measured_at else None),
                where or note,
            )
        )
    elif "writes_by_collection" in idle:  # a report from before documents were counted
        others_rate = sum(rate for name, rate in idle["writes_by_collection"].items() if name != HEARTBEAT)
        targets.append(
            Target(
                f"idle fleet of {GOAL_BOTS} bots: 0 writes/s besides the worker's heartbeat",
                f"{others_rate:.2f}/s",
                verdict(others_rate == 0 if measured_at else None),
                note,
            )
        )
    return targets


def _writes_note(row: dict[str, Any]) -> str:
    """Where the service's writes went, e.g. "update workers 0.33/s" (the liveness heartbeat)."""
    by_collection: dict[str, float] = row.get("writes_by_collection", {})
    parts = [f"{name} {rate:.2f}/s" + (" (the worker's heartbeat)" if name == HEARTBEAT else "")
             for name, rate in by_collection.items()]  # fmt: skip
    return "; ".join(parts)


def _documents_note(row: dict[str, Any]) -> str:
    """The documents the service wrote besides its heartbeat over every window, e.g. "0", or
    "1000 (update bot_leases 1000)"; "-" for data from before they were counted."""
    if "statements_by_collection" not in row:
        return "-"
    others = _besides_heartbeat(row)
    where = "; ".join(f"{name} {n}" for name, n in others.items())
    return f"{sum(others.values())}" + (f" ({where})" if where else "")


def _ratio(before: float, after: float) -> str:
    if after == 0:
        return "∞" if before else "-"
    return f"{before / after:.0f}x"


def _render_census(result: dict[str, Any]) -> list[str]:
    """The census run's table: what an idle worker's event loop ran, by CPU time."""
    row = result.get("census")
    if not row or not row["windows"] or "census" not in row["windows"][0]:
        return []
    census = row["windows"][0]["census"]
    uvloop_cpu = _current(result["idle"])["cpu_share"] * 100
    gc_ms = ", ".join(f"{ms:.2f}" for ms in census["gc_ms_per_s"].values()) or "-"
    lines = [
        "",
        f"**Where an idle worker's loop goes** ({row['bots']} bots with Lavalink, no player): one more "
        "run of this tree on the stdlib asyncio loop with the pure-Python `Task` and `Future`, every "
        f"callback the loop runs timed (benchmarks/loop_census.py), over {census['elapsed_s']:.0f} s "
        "after the same settle. "
        f"That loop and the timing cost more than uvloop ({row['cpu_share'] * 100:.2f}% of a core here, "
        f"{uvloop_cpu:.2f}% on uvloop above): read the shares and the rates. "
        f"{census['iterations_per_s']:.0f} loop iterations/s; the callbacks took "
        f"{census['callbacks_ms_per_s']:.1f} ms of CPU a second ({census['callbacks_per_s']:.0f} runs/s); "
        f"the garbage collector {gc_ms} ms/s (generations 0, 1, 2). A task is named by its coroutine and, "
        "after `@`, the coroutine it was waiting in.",
    ]
    bare = result.get("bare_census")
    if bare and bare["windows"] and "census" in bare["windows"][0]:
        floor = bare["windows"][0]["census"]
        floor_gc = sum(floor["gc_ms_per_s"].values())
        ours_gc = sum(census["gc_ms_per_s"].values())
        lines += [
            "",
            f"The same census of {bare['bots']} bare discord.py clients (no Chorus, no Lavalink; "
            f"benchmarks/bare_clients.py): {bare['cpu_share'] * 100:.2f}% of a core, "
            f"{floor['iterations_per_s']:.0f} loop iterations/s, callbacks {floor['callbacks_ms_per_s']:.1f} "
            f"ms/s ({floor['callbacks_per_s']:.0f} runs/s), the garbage collector {floor_gc:.2f} ms/s. "
            f"What Chorus adds over discord.py, censused alike: "
            f"{(row['cpu_share'] - bare['cpu_share']) * 1000:.1f} ms of CPU a second, of which callbacks "
            f"{census['callbacks_ms_per_s'] - floor['callbacks_ms_per_s']:.1f} ms and the garbage collector "
            f"{ours_gc - floor_gc:.2f} ms. discord.py's own, its largest: "
            + "; ".join(f"`{e['what']}` {e['ms_per_s']:.2f} ms/s" for e in floor["top"][:4])
            + ".",
        ]
    lines += [
        "",
        "| what the loop ran | CPU ms/s | share of the callbacks | runs/s | µs per run |",
        "|---|---:|---:|---:|---:|",
    ]
    total = census["callbacks_ms_per_s"] or 1.0
    for entry in census["top"][:20]:
        what = entry["what"].replace("|", "\\|")
        lines.append(f"| `{what}` | {entry['ms_per_s']:.2f} | {entry['ms_per_s'] / total * 100:.0f}% "
                     f"| {entry['calls_per_s']:.1f} | {entry['us_per_call']:.0f} |")  # fmt: skip
    return lines


def render(result: dict[str, Any]) -> str:
    lines = [
        "Each row pair is measured in the same run: a baseline checkout, *before* "
        f"(`{result['baseline_ref'] or 'not available'}`; by default `16e8f9e`, the code before the worker "
        "scheduler: per-bot idle and snapshot loops, per-node Lavalink watchdogs; run with that checkout "
        "first on `PYTHONPATH`, same virtualenv) and this tree, *scheduler*.",
        "",
        "**Idle fleet** (every bot ready and connected to a fake Lavalink node, no player; the last row "
        "without Lavalink, to show what the Lavalink connections' own keepalives cost):",
        "",
        "| code | bots | windows x s | CPU, % of a core (median) | each window "
        "| database write commands/s (median) | the service's write commands by collection "
        "| documents it wrote besides its heartbeat, all windows | its commands/s | RSS (MiB) "
        "| others' CPU, % of the machine |",
        "|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for row in result["idle"]:
        cpu, writes = row["cpu_share"] * 100, row["db_writes_per_s"]
        spans = f"{len(row['windows'])} x {row['window_s']:g}"
        each = ", ".join(f"{w['cpu_share'] * 100:.2f}" for w in row["windows"])
        rss = f"{row['rss_mib']:.0f}" if "rss_mib" in row else "-"  # older data has none
        others = f"{row['others_share'] * 100:.0f}" if "others_share" in row else "-"
        by_collection = _writes_note(row) or ("none" if "writes_by_collection" in row else "-")
        commands = f"{row['commands_per_s']:.2f}" if "commands_per_s" in row else "-"
        documents = _documents_note(row)
        lines.append(f"| {row['code']} | {row['bots']} | {spans} | {cpu:.2f} | {each} | {writes:.2f} "
                     f"| {by_collection} | {documents} | {commands} | {rss} | {others} |")  # fmt: skip
    lines += _render_census(result)
    lines += [
        "",
        "**Snapshot volume** (players of 50 queued tracks, all playing, 3-minute tracks, one sweep per "
        "10 s of simulated time, after the first sweep):",
        "",
        "| code | players | simulated s | bytes/s to the database | write statements/s | commands/s "
        "| CPU per sweep ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["volume"]:
        cells = [row["code"], str(row["players"]), f"{row['simulated_s']:.0f}", f"{row['bytes_per_s']:,.0f}",
                 f"{row['writes_per_s']:.1f}", f"{row['commands_per_s']:.1f}",
                 f"{row['cpu_per_sweep_ms']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if len(result["volume"]) == 2 and len(result["idle"]) >= 2:
        (old_idle, new_idle), (old_volume, new_volume) = result["idle"][:2], result["volume"]
        cpu = _ratio(old_idle["cpu_share"], new_idle["cpu_share"])
        writes = _ratio(old_idle["db_writes_per_s"], new_idle["db_writes_per_s"])
        volume = _ratio(old_volume["bytes_per_s"], new_volume["bytes_per_s"])
        lines += ["", f"Same-run ratios (before / after): idle CPU {cpu}, idle database writes {writes}, "
                  f"snapshot bytes/s {volume}."]  # fmt: skip
    return "\n".join(lines)
