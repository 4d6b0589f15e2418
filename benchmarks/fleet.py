"""Benchmark 1, fleet size: N bots in one `chorus serve` against N single-bot processes.

For each N, `chorus serve` is started with N stored bots and timed from the moment it is spawned
until `/health` reports N active bots (polled every 20 ms); after a settle time its resident
memory is read. The baseline starts N processes of `benchmarks/single_bot.py` at once, each
writing the (system-wide) monotonic clock when its `on_ready` fires, and adds up their memory.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.processes import (
    PYTHON,
    REPO,
    BenchError,
    CommandLine,
    base_env,
    cpu_reading,
    cpu_seconds,
    describe_command,
    foreign_cpu_share,
    pss_bytes,
    rss_bytes,
    usage,
    wait_until,
)
from benchmarks.service import ServiceOptions, drop_database, new_database_name, seed_bots
from benchmarks.targets import Target, mib, percent, seconds, verdict

_log = logging.getLogger(__name__)

NAME = "fleet"
TITLE = "Fleet size: one process with N bots against N single-bot processes"


@dataclass(frozen=True)
class Variant:
    """One way of starting the service; `guild_ready_timeout=None` is the service's default."""

    label: str
    guild_ready_timeout: float | None


def variants(ctx: BenchContext) -> list[Variant]:
    return [Variant("default" if t is None else f"grt={t:g}", t) for t in ctx.config.ready_timeouts]


def measure_chorus(ctx: BenchContext, bots: int, variant: Variant) -> dict[str, Any]:
    quiet = ctx.wait_for_quiet()
    before = cpu_reading(ctx.children)
    database = new_database_name(f"fleet{bots}")
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots])
    options = ServiceOptions(guild_ready_timeout=variant.guild_ready_timeout)
    try:
        service = ctx.start_chorus(database, options, shown_as=f"fleet: chorus serve, {variant.label}")
        try:
            http_up = service.wait_http(timeout=60)
            ready = service.wait_ready(bots, timeout=60 + bots)
            cpu_at_ready = cpu_seconds(service.child.pid)
            rss_at_ready = rss_bytes(service.child.pid)
            time.sleep(ctx.config.settle)
            service.get_json("/health")  # the process is alive and answering after the settle
            rss_idle = rss_bytes(service.child.pid)
            pss_idle = pss_bytes(service.child.pid)
            cpu_idle = cpu_seconds(service.child.pid)
        finally:
            stop_started = time.monotonic()
            code = ctx.children.stop(service.child)
            stopped = time.monotonic()
        if code not in (0, None):
            _log.warning("chorus serve exited with %s:\n%s", code, service.child.tail())
    finally:
        drop_database(ctx.database_url, database)
    return {
        "http_up_s": round(http_up - service.child.started_at, 4),
        "ready_s": round(ready - service.child.started_at, 4),
        "cpu_at_ready_s": round(cpu_at_ready, 3),
        "cpu_during_settle_s": round(cpu_idle - cpu_at_ready, 3),
        "rss_at_ready": rss_at_ready,
        "rss_idle": rss_idle,
        "pss_idle": pss_idle,
        "shutdown_s": round(stopped - stop_started, 3),
        "exit_code": code,
        "foreign_cpu_before": round(quiet, 3),
        "foreign_cpu_share": round(foreign_cpu_share(before, cpu_reading(ctx.children)), 3),
    }


def single_bot_command(env: dict[str, str]) -> CommandLine:
    shown = ["DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "GUILD_READY_TIMEOUT", "BOT_TOKEN", "READY_FILE"]
    env = {**env, "BOT_TOKEN": "<token of bot i>", "READY_FILE": "<tmp>/ready-i"}
    return describe_command("single bot xN", [PYTHON, str(REPO / "benchmarks" / "single_bot.py")], env, shown)


def measure_baseline(ctx: BenchContext, bots: int) -> dict[str, Any]:
    ready_dir = ctx.work_dir / f"ready-{uuid.uuid4().hex[:8]}"
    ready_dir.mkdir()
    script = str(REPO / "benchmarks" / "single_bot.py")
    env = base_env(DISCORD_API_BASE=ctx.world.api_base, DISCORD_GATEWAY_URL=ctx.world.gateway_url)
    ready_timeout = variants(ctx)[0].guild_ready_timeout  # the same wait as the primary fleet variant
    if ready_timeout is not None:
        env["GUILD_READY_TIMEOUT"] = f"{ready_timeout:g}"
    ctx.record_command("fleet: baseline", single_bot_command(env))
    quiet = ctx.wait_for_quiet()
    before = cpu_reading(ctx.children)
    started = time.monotonic()
    children = [
        ctx.children.start(f"single-bot-{i}", [PYTHON, script],
                           env={**env, "BOT_TOKEN": bot.token, "READY_FILE": str(ready_dir / str(i))})
        for i, bot in enumerate(ctx.world.bots[:bots])
    ]  # fmt: skip
    try:
        wait_until(
            lambda: sum(1 for p in ready_dir.iterdir() if p.name.isdigit()) >= bots,
            timeout=60 + 2 * bots,
            interval=0.05,
            what=f"{bots} single-bot processes to be ready",
            watch=children,
        )
        ready_times = sorted(float((ready_dir / str(i)).read_text()) - started for i in range(bots))
        time.sleep(ctx.config.settle)
        idle = usage(children)
    finally:
        ctx.children.stop_together(children)  # the bots close in parallel
    return {
        "ready_s": round(ready_times[-1], 4),
        "first_ready_s": round(ready_times[0], 4),
        "median_bot_ready_s": round(statistics.median(ready_times), 4),
        "cpu_total_s": round(sum(idle.cpu), 3),
        "rss_total": sum(idle.rss),
        "rss_per_process": round(sum(idle.rss) / bots),
        "pss_total": idle.pss_total,
        "foreign_cpu_before": round(quiet, 3),
        "foreign_cpu_share": round(foreign_cpu_share(before, cpu_reading(ctx.children)), 3),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    config = ctx.config
    if max(config.sizes, default=0) > len(ctx.world.bots):
        raise BenchError("the fake Discord has fewer bots than the largest fleet size")
    chorus: dict[str, dict[str, list[dict[str, Any]]]] = {v.label: {} for v in variants(ctx)}
    baseline: dict[str, list[dict[str, Any]]] = {}
    for run_index in range(config.runs):
        for bots in config.sizes:
            for variant in variants(ctx):
                ctx.progress(
                    f"fleet run {run_index + 1}/{config.runs}: chorus, {bots} bot(s), {variant.label}"
                )
                sample = measure_chorus(ctx, bots, variant)
                ctx.progress(
                    f"  ready {sample['ready_s']:.2f}s, idle RSS {sample['rss_idle'] / 2**20:.1f} MiB"
                )
                chorus[variant.label].setdefault(str(bots), []).append(sample)
        for bots in config.baseline_sizes:
            ctx.progress(f"fleet run {run_index + 1}/{config.runs}: baseline, {bots} single-bot process(es)")
            sample = measure_baseline(ctx, bots)
            ctx.progress(f"  ready {sample['ready_s']:.2f}s, total RSS {sample['rss_total'] / 2**20:.1f} MiB")
            baseline.setdefault(str(bots), []).append(sample)
    return {
        "sizes": list(config.sizes),
        "baseline_sizes": list(config.baseline_sizes),
        "runs": config.runs,
        "settle_s": config.settle,
        "variants": {v.label: v.guild_ready_timeout for v in variants(ctx)},
        "chorus": chorus,
        "baseline": baseline,
        "summary": summarize(chorus, baseline, list(config.sizes), list(config.baseline_sizes)),
        "baseline_guild_ready_timeout": variants(ctx)[0].guild_ready_timeout,
    }


# -- summary ------------------------------------------------------------------------------------


def median_of(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if s.get(key) is not None]
    return statistics.median(values) if values else None


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    if denominator == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


def summarize(
    chorus: dict[str, dict[str, list[dict[str, Any]]]],
    baseline: dict[str, list[dict[str, Any]]],
    sizes: list[int],
    baseline_sizes: list[int],
) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for label, by_size in chorus.items():
        rows[label] = []
        for bots in sizes:
            samples = by_size.get(str(bots), [])
            rows[label].append({
                "bots": bots,
                "ready_s": median_of(samples, "ready_s"),
                "http_up_s": median_of(samples, "http_up_s"),
                "cpu_at_ready_s": median_of(samples, "cpu_at_ready_s"),
                "rss_idle": median_of(samples, "rss_idle"),
                "pss_idle": median_of(samples, "pss_idle"),
                "rss_at_ready": median_of(samples, "rss_at_ready"),
                "foreign_cpu": median_of(samples, "foreign_cpu_share"),
            })  # fmt: skip
    primary = next(iter(chorus), "default")
    default_rows = rows.get(primary, [])
    memory_points = [(r["bots"], r["rss_idle"]) for r in default_rows if r["rss_idle"] is not None]
    increments = [
        {
            "from": a[0],
            "to": b[0],
            "bytes_per_bot": (b[1] - a[1]) / (b[0] - a[0]),
        }
        for a, b in itertools.pairwise(memory_points)
    ]
    baseline_rows = []
    for bots in baseline_sizes:
        samples = baseline.get(str(bots), [])
        chorus_row = next((r for r in default_rows if r["bots"] == bots), None)
        rss_total = median_of(samples, "rss_total")
        pss_total = median_of(samples, "pss_total")
        row: dict[str, Any] = {
            "bots": bots,
            "ready_s": median_of(samples, "ready_s"),
            "median_bot_ready_s": median_of(samples, "median_bot_ready_s"),
            "cpu_total_s": median_of(samples, "cpu_total_s"),
            "rss_total": rss_total,
            "pss_total": pss_total,
            "rss_per_process": median_of(samples, "rss_per_process"),
            "foreign_cpu": median_of(samples, "foreign_cpu_share"),
        }
        if chorus_row is not None and rss_total and chorus_row["rss_idle"]:
            row["rss_ratio"] = rss_total / chorus_row["rss_idle"]
            if pss_total and chorus_row["pss_idle"]:
                row["pss_ratio"] = pss_total / chorus_row["pss_idle"]
            if chorus_row["ready_s"] and row["ready_s"]:
                row["ready_ratio"] = row["ready_s"] / chorus_row["ready_s"]
        baseline_rows.append(row)
    baseline_points = [(r["bots"], r["rss_total"]) for r in baseline_rows if r["rss_total"] is not None]
    return {
        "primary": primary,
        "rows": rows,
        "baseline_rows": baseline_rows,
        "memory_increments": increments,
        "bytes_per_additional_bot": slope(memory_points),
        "baseline_bytes_per_additional_bot": slope(baseline_points),
    }


# -- targets and report ---------------------------------------------------------------------------

READY_GOAL_S = 3.0
READY_GOAL_BOTS = 100
PER_BOT_GOAL_BYTES = 2**20
RATIO_GOAL = 20.0
RATIO_BOTS = 50


def _row_for(rows: list[dict[str, Any]], bots: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["bots"] == bots), None)


def targets(result: dict[str, Any]) -> list[Target]:
    summary = result["summary"]
    default = _row_for(summary["rows"].get("default", []), READY_GOAL_BOTS)
    others = [(label, _row_for(rows, READY_GOAL_BOTS)) for label, rows in summary["rows"].items()]
    ready = default["ready_s"] if default else None
    fast_note = "; ".join(
        f"{row['ready_s']:.2f} s with `{label}`" for label, row in others if label != "default" and row
    )
    per_bot = summary.get("bytes_per_additional_bot")
    base = _row_for(summary["baseline_rows"], RATIO_BOTS)
    ratio = base.get("rss_ratio") if base else None
    pss_ratio = base.get("pss_ratio") if base else None
    return [
        Target(
            goal=f"{READY_GOAL_BOTS} bots ready in < {READY_GOAL_S:g} s (default settings)",
            measured=f"{seconds(ready)} s",
            verdict=verdict(None if ready is None else ready < READY_GOAL_S),
            note=fast_note,
        ),
        Target(
            goal="< 1 MiB resident memory per additional idle bot",
            measured="-" if per_bot is None else f"{per_bot / 1024:.0f} KiB",
            verdict=verdict(None if per_bot is None else per_bot < PER_BOT_GOAL_BYTES),
            note="least-squares slope of idle RSS over N",
        ),
        Target(
            goal=f"at N = {RATIO_BOTS}, ≥ {RATIO_GOAL:g}x less memory than {RATIO_BOTS} single-bot processes",
            measured="-" if ratio is None else f"{ratio:.1f}x (RSS)",
            verdict=verdict(None if ratio is None else ratio >= RATIO_GOAL),
            note="" if pss_ratio is None else f"{pss_ratio:.1f}x counting shared pages once (PSS)",
        ),
    ]


def render(result: dict[str, Any]) -> str:
    summary = result["summary"]
    lines = [
        f"`chorus serve` is timed from its spawn until `/health` reports every bot active (polled every "
        f"20 ms); its memory is read {result['settle_s']:g} s later (idle). "
        f"Medians of {result['runs']} runs. "
        "`default` is the service's default `GUILD_READY_TIMEOUT` (2 s): discord.py waits that long "
        "after READY for more guilds before it fires `on_ready`; the other rows set it shorter to show "
        "how much of the ready time is that wait. Every bot is in one guild.",
        "",
        "| bots | variant | ready (s) | HTTP up (s) | CPU to ready (s) | idle RSS (MiB) | idle PSS (MiB) "
        "| others' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rows in summary["rows"].items():
        for row in rows:
            lines.append(
                f"| {row['bots']} | {label} | {seconds(row['ready_s'])} | {seconds(row['http_up_s'])} "
                f"| {seconds(row['cpu_at_ready_s'])} | {mib(row['rss_idle'])} | {mib(row['pss_idle'])} "
                f"| {percent(row.get('foreign_cpu'))} |"
            )
    lines += ["", f"Memory per additional bot (idle RSS, `{summary['primary']}` rows):", ""]
    lines += ["| from → to | per additional bot (KiB) |", "|---|---:|"]
    for step in summary["memory_increments"]:
        lines.append(f"| {step['from']} → {step['to']} | {step['bytes_per_bot'] / 1024:.0f} |")
    per_bot = summary.get("bytes_per_additional_bot")
    if per_bot is not None:
        lines.append(f"| least-squares slope over all N | **{per_bot / 1024:.0f}** |")
    lines += [
        "",
        f"**Baseline**: N processes of `benchmarks/single_bot.py` started at once (capped at "
        f"{max(result['baseline_sizes'], default=0)}: each is a full interpreter importing discord.py and "
        "wavelink, and 200 of them on 2 cores would take minutes per run). Memory is the sum over the N "
        "processes; PSS counts the pages they share (the interpreter, shared libraries) once.",
        "",
        "| N | all ready (s) | median bot ready (s) | CPU total (s) | total RSS (MiB) | total PSS (MiB) "
        "| RSS per process (MiB) | Chorus idle RSS (MiB) | RSS ratio | PSS ratio | ready-time ratio "
        "| others' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    default_rows = summary["rows"].get(summary["primary"], [])
    for row in summary["baseline_rows"]:
        chorus_row = _row_for(default_rows, row["bots"])
        lines.append(
            f"| {row['bots']} | {seconds(row['ready_s'])} | {seconds(row['median_bot_ready_s'])} "
            f"| {seconds(row['cpu_total_s'], 1)} | {mib(row['rss_total'], 0)} | {mib(row['pss_total'], 0)} "
            f"| {mib(row['rss_per_process'])} | {mib(chorus_row['rss_idle'] if chorus_row else None)} "
            f"| {_times(row.get('rss_ratio'))} | {_times(row.get('pss_ratio'))} "
            f"| {_times(row.get('ready_ratio'))} | {percent(row.get('foreign_cpu'))} |"
        )
    lines += ["", *_ready_analysis(summary)]
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _ready_analysis(summary: dict[str, Any]) -> list[str]:
    """Where the ready time goes, from the rows themselves."""
    primary = summary["primary"]
    default_rows = summary["rows"].get(primary, [])
    notes: list[str] = []
    big = _row_for(default_rows, READY_GOAL_BOTS) or (default_rows[-1] if default_rows else None)
    one = _row_for(default_rows, 1)
    if big and big["ready_s"] and big["http_up_s"]:
        notes.append(
            f"- With {big['bots']} bots (`{primary}`), {big['http_up_s']:.2f} s pass before the "
            "service answers HTTP (interpreter start, imports, database connection and Beanie init, reading "
            f"the bots) and {big['ready_s'] - big['http_up_s']:.2f} s more until every bot is ready."
        )
    for label, rows in summary["rows"].items():
        if label == primary or not big or primary != "default":
            continue
        other = _row_for(rows, big["bots"])
        if other and other["ready_s"] and big["ready_s"]:
            notes.append(
                f"- `{label}` at {big['bots']} bots: ready in {other['ready_s']:.2f} s, "
                f"{big['ready_s'] - other['ready_s']:.2f} s less than with the default 2 s wait, "
                "which each bot "
                "spends after its READY (the waits of different bots overlap, so it costs about 2 s once)."
            )
    largest = default_rows[-1] if default_rows else None
    if one and largest and largest is not one and one["cpu_at_ready_s"] and largest["cpu_at_ready_s"]:
        per_bot_cpu = (largest["cpu_at_ready_s"] - one["cpu_at_ready_s"]) / (largest["bots"] - one["bots"])
        notes.append(
            f"- CPU: {one['cpu_at_ready_s']:.2f} s to reach ready with 1 bot (mostly imports), "
            f"{largest['cpu_at_ready_s']:.2f} s with {largest['bots']}: "
            f"**{per_bot_cpu * 1000:.1f} ms of CPU per "
            "additional bot** to start (client, login, extensions, gateway, database writes). On one core "
            "that work is serial, so it bounds how fast a large fleet can become ready."
        )
    return notes
