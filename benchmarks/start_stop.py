"""Benchmark: what one more bot costs at start (CPU, database round trips), and SIGTERM to exit.

Issue 14 item 5 and the shutdown bound. Each measurement runs on this tree and on checkouts of
two codes before, in the same run, so the ratios compare like with like on a machine whose load
changes:

- *before* (`--start-stop-baseline`, c08997c): main when item 5's work began, one process and no
  leases: per-bot IDENTIFY-log read and write, per-bot guild and snapshot reads, every bot's stop
  gathered at once;
- *lease fleet before* (`--start-stop-lease-baseline`, f98bf89): the lease fleet (workers, bot
  leases, status publication, change streams; built meanwhile for another issue) just before
  item 5's start work was merged into it. Every bot's start there also claims a lease and is
  published and followed by the worker's streams, work the first baseline does not do: this is
  the like-for-like comparison for what item 5's changes cut.

For each code and each N (300 and 1,000 by default), `--start-stop-runs` times, on a fresh
database where the fleet has already started once (unmeasured: the measured start is a restart,
with the bots' guilds recorded and their IDENTIFY logs written, the common case):

- `chorus serve` with N bots (one guild each, `GUILD_READY_TIMEOUT=0.1`, each bot connected to one
  fake Lavalink node, no player): the process's CPU time
  when every bot is ready, and once its start-up work is over (CPU below 10% for a second: guild
  records, saved players); the database commands it sent until then (one per round trip, counted
  by a PyMongo command listener: `benchmarks/counted_serve.py`; the service's own start-up reads
  are included, and are the same for every N);
- then SIGTERM: the seconds until the process exits (capped; past the cap it is killed), whether
  it logged bots cut off at its deadline, and how each bot's gateway connection ended, as the fake
  Discord saw it (a close frame, or dropped by the exit).

*Per additional bot* is the difference of the medians between the two N divided by the
difference of N (a slope between two sizes of the same run): the process's fixed costs (imports,
database connection) cancel out. Then the start-up of both N is profiled (pyinstrument, this tree
only) and the difference of own time per function is shown: where the CPU of one more bot goes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.processes import BenchError, cpu_seconds, read_json_when_written, wait_until, wait_until_idle
from benchmarks.service import (
    ServiceOptions,
    add_checkout,
    drop_database,
    guilds_recorded,
    new_database_name,
    post_json,
    remove_checkout,
    seed_bots,
    start_fake_lavalink,
)
from benchmarks.targets import Target, verdict

NAME = "start_stop"
TITLE = "Start-up cost per bot, and SIGTERM to exit"
# The codes before, as labelled in the report, in the order they run (see the module doc).
BEFORE = "before"
LEASE_BEFORE = "lease fleet before"
THIS_TREE = "this tree"
STOP_CAP = 120.0  # seconds a stopping process is given before it is killed
# Frames of the loop waiting (not work): left out of the per-bot profile difference.
_IDLE_FRAMES = ("run (asyncio/runners.py", "select (selectors.py", "_run_once (asyncio/base_events.py")


def _first_start(ctx: BenchContext, code: Path | None, database: str, n: int, nodes: str) -> None:
    """Start the fleet once, unmeasured, and stop it: the measured start is a restart (the bots'
    guilds recorded, their IDENTIFY logs written), the common case."""
    options = ServiceOptions(guild_ready_timeout=0.1, code_dir=code, lavalink_nodes=nodes)
    service = ctx.start_chorus(database, options)
    try:
        service.wait_http(timeout=120)
        service.wait_ready(n, timeout=120 + n / 5)
        # Until the guild records are all written: the process can look idle while it waits on a
        # busy database, and a restart would then write what this start left undone.
        try:
            wait_until(lambda: guilds_recorded(ctx.database_url, database, bots=n),
                       timeout=120 + n / 5, what="the first start's guild records", interval=0.5,
                       watch=[service.child])  # fmt: skip
        except BenchError as exc:  # measured anyway: the restart then writes what is missing
            ctx.progress(f"  start/stop: {exc}; the restart will write the missing records")
        wait_until_idle(service.child.pid)
    finally:
        ctx.children.stop(service.child, timeout=STOP_CAP)


def _measure(ctx: BenchContext, code: Path | None, label: str, n: int, nodes: str) -> dict[str, Any]:
    bots = ctx.world.bots[:n]
    ctx.wait_for_quiet()
    database = new_database_name("startstop")
    seed_bots(ctx.database_url, database, ctx.key, bots)
    _first_start(ctx, code, database, n, nodes)
    ctx.wait_for_quiet()
    counted = ctx.work_dir / f"{database}-commands.json"
    options = ServiceOptions(
        guild_ready_timeout=0.1, code_dir=code, lavalink_nodes=nodes, count_commands=counted
    )
    service = ctx.start_chorus(database, options, shown_as=f"start/stop: chorus serve ({label})")
    try:
        spawned = time.monotonic()
        service.wait_http(timeout=120)
        service.wait_ready(n, timeout=120 + n / 5)
        ready_s = time.monotonic() - spawned
        pid = service.child.pid
        cpu_ready = cpu_seconds(pid)
        wait_until_idle(pid)
        cpu_settled = cpu_seconds(pid)
        os.kill(pid, signal.SIGUSR1)  # the database commands sent so far
        counts = read_json_when_written(counted, what="the command count", timeout=60, interval=0.05,
                                        watch=[service.child])  # fmt: skip
        ops = int(counts["commands"])
        by_collection: dict[str, int] = counts.get("by_collection", {})
        log_ops = sum(n for name, n in by_collection.items() if name.endswith(" bot_identify_log"))
        # SIGTERM to exit.
        stop_started = time.monotonic()
        service.child.process.send_signal(signal.SIGTERM)
        try:
            service.child.process.wait(timeout=STOP_CAP)
            stop_s: float | None = time.monotonic() - stop_started
        except subprocess.TimeoutExpired:
            stop_s = None
        exit_code = service.child.process.returncode
        log = service.child.log_path.read_text(errors="replace")
        closes = post_json(f"{ctx.world.control_url}/bench/closes",
                           {"client_ids": [bot.client_id for bot in bots]}, timeout=30)  # fmt: skip
    finally:
        ctx.children.stop(service.child, timeout=30)
        drop_database(ctx.database_url, database)
    row = {
        "code": label, "bots": n, "ready_s": round(ready_s, 2), "cpu_ready_s": round(cpu_ready, 3),
        "cpu_settled_s": round(cpu_settled, 3), "db_ops": ops, "log_ops": log_ops,
        "stop_s": None if stop_s is None else round(stop_s, 2), "exit_code": exit_code,
        "cut_off": "not stopped cleanly" in log, "closes": closes,
    }  # fmt: skip
    stop_text = "killed" if stop_s is None else f"{stop_s:.1f} s"
    ctx.progress(f"  start/stop ({label}, {n} bots): ready {ready_s:.1f} s, CPU {cpu_ready:.2f} s "
                 f"(settled {cpu_settled:.2f} s), {ops} database round trips; SIGTERM to exit {stop_text}, "
                 f"closes {closes}")  # fmt: skip
    return row


def _median_row(samples: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"runs": len(samples), "code": samples[0]["code"], "bots": samples[0]["bots"]}
    for key in ("ready_s", "cpu_ready_s", "cpu_settled_s", "db_ops", "log_ops"):
        row[key] = statistics.median(s[key] for s in samples)
    stops = [s["stop_s"] for s in samples]
    # A killed stop counts as the cap (it took at least that long).
    row["stop_s"] = statistics.median(STOP_CAP if v is None else v for v in stops)
    row["stops_killed"] = sum(1 for v in stops if v is None)
    row["stop_samples"] = stops
    row["cut_off"] = sum(1 for s in samples if s["cut_off"])
    row["closes"] = samples[-1]["closes"]
    row["exit_codes"] = [s["exit_code"] for s in samples]
    return row


def _profile(ctx: BenchContext, n: int, nodes: str) -> dict[str, Any]:
    """pyinstrument from the first line until every bot is ready and the start-up work is over."""
    database = new_database_name("startstop_profile")
    out = ctx.work_dir / f"{database}.json"
    ctx.wait_for_quiet()
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:n])
    _first_start(ctx, None, database, n, nodes)
    options = ServiceOptions(
        guild_ready_timeout=0.1, lavalink_nodes=nodes, profile="startup", profile_out=out
    )
    service = ctx.start_chorus(database, options, shown_as="start/stop: chorus serve under the profiler")
    try:
        service.wait_http(timeout=120)
        service.wait_ready(n, timeout=120 + n)
        wait_until_idle(service.child.pid)
        os.kill(service.child.pid, signal.SIGUSR1)
        document = read_json_when_written(out, what="the start-up profile", timeout=120, interval=0.1,
                                          watch=[service.child])  # fmt: skip
    finally:
        ctx.children.stop(service.child, timeout=60)
        drop_database(ctx.database_url, database)
    return {
        "bots": n,
        **{k: document.get(k) for k in ("duration", "cpu", "by_package", "by_function", "under")},
    }


def _difference(small: dict[str, Any], large: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Own seconds per additional bot, per name, from two profiles (largest first)."""
    extra = large["bots"] - small["bots"]
    before = {row["name"]: row["seconds"] for row in small.get(key) or []}
    rows = [
        {"name": row["name"], "ms_per_bot": (row["seconds"] - before.get(row["name"], 0.0)) / extra * 1000}
        for row in large.get(key) or []
        if not str(row["name"]).startswith(_IDLE_FRAMES)
    ]
    return sorted(rows, key=lambda row: row["ms_per_bot"], reverse=True)


def run(ctx: BenchContext) -> dict[str, Any]:
    sizes = sorted(size for size in ctx.config.start_stop_sizes if size <= len(ctx.world.bots))
    refs = {BEFORE: ctx.config.start_stop_baseline, LEASE_BEFORE: ctx.config.start_stop_lease_baseline}
    checkouts: dict[str, Path] = {}
    for label, ref in refs.items():
        target = ctx.work_dir / f"baseline-start-stop-{len(checkouts)}"
        checkout = add_checkout(ref, target, label=f"start/stop ({label})", progress=ctx.progress)
        if checkout is not None:
            checkouts[label] = checkout
    variants: list[tuple[Path | None, str]] = [(path, label) for label, path in checkouts.items()]
    variants.append((None, THIS_TREE))
    rows: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    node = start_fake_lavalink(ctx.children, ctx.work_dir, tracks=1)  # every bot has a node to close
    try:
        # Interleaved (before, after, before, after...) so a change in the machine's load hits both.
        for n in sizes:
            samples: dict[str, list[dict[str, Any]]] = {label: [] for _, label in variants}
            for _ in range(ctx.config.start_stop_runs):
                for code, label in variants:
                    samples[label].append(_measure(ctx, code, label, n, node.lavalink_nodes))
            rows += [_median_row(samples[label]) for _, label in variants]
        if ctx.config.profile and importlib.util.find_spec("pyinstrument") is not None and len(sizes) >= 2:
            for n in (sizes[0], sizes[-1]):
                ctx.progress(f"  start/stop: profiling the start of {n} bots")
                profiles.append(_profile(ctx, n, node.lavalink_nodes))
    finally:
        ctx.children.stop(node.child)
        for checkout in checkouts.values():
            remove_checkout(checkout)
    return {"baseline_ref": refs[BEFORE] if BEFORE in checkouts else None,
            "lease_baseline_ref": refs[LEASE_BEFORE] if LEASE_BEFORE in checkouts else None,
            "rows": rows, "profiles": profiles, "stop_cap_s": STOP_CAP}  # fmt: skip


def _slope(rows: list[dict[str, Any]], code: str, key: str) -> float | None:
    mine = sorted((r for r in rows if r["code"] == code), key=lambda r: r["bots"])
    if len(mine) < 2 or mine[-1]["bots"] == mine[0]["bots"]:
        return None
    return (mine[-1][key] - mine[0][key]) / (mine[-1]["bots"] - mine[0]["bots"])


def _largest(rows: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    mine = [r for r in rows if r["code"] == code]
    return max(mine, key=lambda r: r["bots"]) if mine else None


def _less_than(rows: list[dict[str, Any]], baseline: str, key: str, what: str, how: str) -> Target:
    mine, before = _slope(rows, THIS_TREE, key), _slope(rows, baseline, key)
    shown = (
        "-"
        if mine is None
        else f"{mine * 1000:.2f} ms" + ("" if before is None else f" ({baseline}: {before * 1000:.2f} ms)")
    )
    return Target(what, shown, verdict(None if mine is None or before is None else mine < before), how)


def targets(result: dict[str, Any]) -> list[Target]:
    rows = result["rows"]
    ops = _slope(rows, THIS_TREE, "db_ops")
    large = _largest(rows, THIS_TREE)
    ready_how = "slope of the median CPU to ready between the two N, same run"
    settled_how = "slope of the median CPU until settled between the two N, same run"
    per_bot = "start-up CPU per additional bot"
    settled = f"{per_bot}, until the start's work is over"
    out = [
        _less_than(rows, BEFORE, "cpu_ready_s", f"{per_bot}: less than before", ready_how),
        # The whole start: the code before did part of its start's work after READY (its guild
        # records and saved players, bot by bot), so its CPU to ready leaves that part out.
        _less_than(rows, BEFORE, "cpu_settled_s", f"{settled}: less than before", settled_how),
        # Like for like: the lease fleet before item 5's start work (leases and streams on both sides).
        _less_than(
            rows, LEASE_BEFORE, "cpu_ready_s", f"{per_bot}: less than the lease fleet before", ready_how
        ),
        _less_than(
            rows, LEASE_BEFORE, "cpu_settled_s", f"{settled}: less than the lease fleet before", settled_how
        ),
        Target(
            "one database round trip per bot at start",
            "-" if ops is None else f"{ops:.2f} commands/bot counted (see the start-up section)",
            verdict(None),
            "asserted (exactly 1 at a restart) by tests/bots/test_start_round_trips.py; the bench "
            "counts only commands that got a pooled connection",
        ),
    ]
    if large is not None:
        stopped = large["stops_killed"] == 0 and large["stop_s"] < 60
        out.append(Target(f"SIGTERM to exit with {large['bots']} bots < 60 s", f"{large['stop_s']:.1f} s",
                          verdict(stopped), "median"))  # fmt: skip
    return out


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        "Each code runs in the same run, interleaved: *before* "
        f"(`{result['baseline_ref'] or 'not available'}`: main when this work began, one process, no "
        "leases), *lease fleet before* "
        f"(`{result.get('lease_baseline_ref') or 'not available'}`: the lease fleet, workers and "
        "change streams, just before this start work was merged into it; the like-for-like baseline) "
        "and this tree; each checkout runs first on `PYTHONPATH`, same virtualenv. "
        "Every bot is in one guild and has one fake Lavalink node (no "
        "player); `GUILD_READY_TIMEOUT=0.1`; each "
        "measured start is a restart (the fleet started once before on that database, unmeasured). "
        f"Medians of {rows[0]['runs'] if rows else 0} run(s). *CPU settled*: once the start-up work after "
        "READY is done. *Database round trips*: the commands the service sent from its first line until "
        "settled (a PyMongo command listener; its fixed start-up reads included). "
        f"A stop not over after {result['stop_cap_s']:.0f} s is killed (counted as that).",
        "",
        "| code | bots | ready (s) | CPU to ready (s) | CPU settled (s) | database round trips "
        "| of which IDENTIFY log | SIGTERM to exit (s) "
        "| runs killed | runs cut off at the deadline | last run: closed with a frame / dropped / open |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        closes = row["closes"] or {}
        ended = f"{closes.get('frame', 0)} / {closes.get('dropped', 0)} / {closes.get('open', 0)}"
        lines.append(
            f"| {row['code']} | {row['bots']} | {row['ready_s']:.2f} | {row['cpu_ready_s']:.2f} "
            f"| {row['cpu_settled_s']:.2f} | {row['db_ops']:.0f} "
            f"| {'-' if row.get('log_ops') is None else format(row['log_ops'], '.0f')} | {row['stop_s']:.1f} "
            f"| {row['stops_killed']} | {row['cut_off']} | {ended} |"
        )
    lines += ["", "Per additional bot (slope between the two N, medians of the same run):", "",
              "| code | CPU to ready (ms/bot) | CPU settled (ms/bot) | database round trips/bot "
              "| SIGTERM to exit (ms/bot) |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for code in dict.fromkeys(row["code"] for row in rows):
        cells = [_slope(rows, code, key) for key in ("cpu_ready_s", "cpu_settled_s", "db_ops", "stop_s")]
        shown = [
            "-" if cells[0] is None else f"{cells[0] * 1000:.2f}",
            "-" if cells[1] is None else f"{cells[1] * 1000:.2f}",
            "-" if cells[2] is None else f"{cells[2]:.2f}",
            "-" if cells[3] is None else f"{cells[3] * 1000:.1f}",
        ]
        lines.append(f"| {code} | " + " | ".join(shown) + " |")
    lines += [
        "",
        "- *Database round trips per bot*: before, a bot's start read its IDENTIFY log, wrote its "
        "IDENTIFY, read its guild records, wrote its guild count, read its saved players, and the "
        "hot-reload watcher's catch-up pass read its record again. This tree reads the IDENTIFY logs, "
        "guild records and saved players once for the whole fleet (three queries), decides each "
        "IDENTIFY from memory and writes it to the bot's log before sending it, batched: the IDENTIFYs "
        "of every bot in a 0.25 s window go in ONE bulk write, one write in flight at a time "
        "(`IdentifyLogBook`). The count grows with the start's duration (one write per window, the "
        "database ping, the scheduler), not with the bots: `tests/bots/test_start_round_trips.py` "
        "asserts no command of its own per bot at a restart, `tests/bots/test_identify_log_book.py` one "
        "write and one read for a hundred bots identifying together. The column *of which IDENTIFY "
        "log* is the batching at work. The unmeasured first start is over only once every bot's "
        "guild count and guild record are written (so the restart writes none: until 12-03 it was "
        "stopped while its guild sync still waited on a busy database, and the restart wrote what "
        "it left). The rest is the fleet "
        "following itself: a separate 1,000-bot restart of this tree (12-03) sent 1,268 commands, "
        "1,133 of them getMores of the change streams (every lease claim and status publication, "
        "about two per bot, is a change the worker's own streams read back; and SecantusDB answers a "
        "parked getMore at a write even when no change matches: measured, 497 getMores on two "
        "streams matching nothing for 1,000 updates in 20 bulk writes), 65 "
        "updates (28 bulk writes of 2,068 lease statements, 28 of 1,000 IDENTIFYs, 9 heartbeats), 34 "
        "finds, 21 index commands and 6 pings.",
        "- *lease fleet before*: the lease fleet (workers, leases, status publication, change streams) "
        "as it was before this start work was merged into it. Each bot's start still made the round "
        "trips of *before* (its IDENTIFY log read, then written with one findAndModify; its guild "
        "records and saved players read; bot by bot), while holding one of the paced start slots, and "
        "besides had its lease claimed and its status published (in batches), changes the worker's "
        "own streams read back. So *this tree* against *lease fleet before* is what the start work "
        "cut, like for like; against *before*, the two differences are mixed: the start work's cut and "
        "what a lease fleet costs per bot.",
        "- *CPU to ready, CPU settled*: the code before did part of a start's work after READY (each "
        "bot's guild records and saved players, read and written bot by bot), so its CPU to ready "
        "leaves that part out; the CPU until settled is the whole start. This tree reaches ready later "
        "at 1,000 bots: the lease fleet starts `START_CONCURRENCY` (64) bots at a time, each slot held "
        'until the bot\'s READY (docs/SCALING.md, "Starting bots without overloading the database"), '
        "and the bots ready first keep their sessions (heartbeats, Lavalink) while the others start: "
        "that is in its CPU to ready too.",
        "- *SIGTERM to exit*: before, every bot's stop was gathered at once; this tree saves every "
        "player and every IDENTIFY still queued in one bulk write each, closes 256 bots at a time and "
        "cuts off what is left after `SHUTDOWN_TIMEOUT` (40 s), logging which bots; if the process is "
        "still there 15 s later it exits by itself (code 3, `ExitDeadline`). The last column is how "
        "the fake Discord saw each bot's gateway connection end (a close frame, or dropped by the exit).",
    ]
    troubled = [r for r in rows if r["code"] == THIS_TREE and (r["stops_killed"] or r["cut_off"])]
    if troubled:
        sizes = ", ".join(str(r["bots"]) for r in troubled)
        lines.append(
            f"- **Not solved**: at {sizes} bots this tree's stop reached its deadline (the log names the "
            "bots cut off) or the process had to be killed."
        )
    after = _slope(rows, THIS_TREE, "cpu_ready_s")
    ratios = [
        f"{label} / this tree {before / after:.2f}x"
        for label in (BEFORE, LEASE_BEFORE)
        if after and (before := _slope(rows, label, "cpu_ready_s"))
    ]
    if ratios:
        lines += ["", "Same-run ratios of the CPU per additional bot to ready: " + ", ".join(ratios) + "."]
    profiles = result.get("profiles") or []
    if len(profiles) == 2:
        small, large = profiles
        lines += [
            "",
            "**Where the CPU of one more bot goes** (this tree): pyinstrument over the start of "
            f"{small['bots']} and of {large['bots']} bots (from the first line to settled; "
            f"{small['cpu']:.2f} s and "
            f"{large['cpu']:.2f} s of CPU under the profiler), own time per additional bot = difference / "
            f"{large['bots'] - small['bots']}; the loop's own waiting is left out. Sampling is wall-clock on "
            "the loop's thread: time the loop spends running callbacks shows in their frames.",
            "",
            "| package | own ms per additional bot |",
            "|---|---:|",
        ]
        lines += [
            f"| `{r['name']}` | {r['ms_per_bot']:.3f} |" for r in _difference(small, large, "by_package")[:12]
        ]
        lines += ["", "| function | own ms per additional bot |", "|---|---:|"]
        lines += [
            f"| `{r['name']}` | {r['ms_per_bot']:.3f} |"
            for r in _difference(small, large, "by_function")[:15]
        ]
        under_small, under_large = small.get("under") or {}, large.get("under") or {}
        extra = large["bots"] - small["bots"]
        phases = [
            (name, (under_large.get(name, 0.0) - under_small.get(name, 0.0)) / extra * 1000)
            for name in ("setup_hook", "login", "connect", "before_identify_hook", "load_extension",
                         "_guild_sync_loop", "_write_and_read_logs")
        ]  # fmt: skip
        lines += ["", "Time under each phase per additional bot (ms, wall-clock, children included): "
                  + ", ".join(f"`{name}` {value:.2f}" for name, value in phases) + "."]  # fmt: skip
    return "\n".join(lines)
