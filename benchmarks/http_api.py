"""Benchmark 2, HTTP: `/health` and `/bots` while N bots are connected.

`chorus serve` runs with N ready bots; `benchmarks.http_load`, a process of its own, sends first
an open-loop fixed rate (latency counted from when each request was due), then saturates the
service with a closed loop of concurrent connections. The service's CPU share during each load
is read from /proc, and the generator reports its own, so the reader sees which side was the limit.
The same loads against a service with 1 bot are the baseline.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.processes import (
    PYTHON,
    BenchError,
    base_env,
    cpu_reading,
    cpu_seconds,
    describe_command,
    foreign_cpu_share,
)
from benchmarks.service import (
    ChorusProcess,
    ServiceOptions,
    drop_database,
    new_database_name,
    seed_bots,
)
from benchmarks.targets import Target, ms, percent, verdict

NAME = "http"
TITLE = "HTTP: /health and /bots with N bots connected"
TARGET_BOTS = 100
HEALTH_P99_GOAL_MS = 10.0


def load_argv(url: str, ctx: BenchContext, *, saturate: bool) -> list[str]:
    config = ctx.config
    argv = [PYTHON, "-m", "benchmarks.http_load", "--url", url, "--warmup", "1",
            "--connections", str(config.http_connections)]  # fmt: skip
    if saturate:
        argv += ["--saturate", "--duration", f"{config.http_saturate_duration:g}"]
    else:
        argv += ["--rate", f"{config.http_rate:g}", "--duration", f"{config.http_duration:g}"]
    return argv


def run_load(
    ctx: BenchContext, service: ChorusProcess, path: str, *, saturate: bool, quiet: bool = True
) -> dict[str, Any]:
    argv = load_argv(service.url(path), ctx, saturate=saturate)
    shown = load_argv(f"http://127.0.0.1:<port>{path}", ctx, saturate=saturate)
    mode = "saturation" if saturate else "fixed rate"
    ctx.record_command(f"http: load generator, {mode}, {path}", describe_command("load", shown, {}, ()))
    budget = 1 + (ctx.config.http_saturate_duration if saturate else ctx.config.http_duration) + 60
    foreign_before = ctx.wait_for_quiet() if quiet else None
    machine_before = cpu_reading(ctx.children)
    cpu_before, wall_before = cpu_seconds(service.child.pid), time.monotonic()
    completed = subprocess.run(argv, env=base_env(), capture_output=True, timeout=budget, check=False)
    wall = time.monotonic() - wall_before
    if completed.returncode != 0:
        raise BenchError(
            f"the load generator failed ({completed.returncode}): {completed.stderr.decode()[-2000:]}"
        )
    result: dict[str, Any] = json.loads(completed.stdout)
    result["server_cpu_share"] = round((cpu_seconds(service.child.pid) - cpu_before) / wall, 3)
    result["foreign_cpu_before"] = None if foreign_before is None else round(foreign_before, 3)
    result["foreign_cpu_share"] = round(foreign_cpu_share(machine_before, cpu_reading(ctx.children)), 3)
    return result


def run(ctx: BenchContext) -> dict[str, Any]:
    config = ctx.config
    by_bots: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for bots in config.http_bots:
        database = new_database_name(f"http{bots}")
        seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots])
        # The wait after READY does not change what is measured here, only how long it takes to get there.
        options = ServiceOptions(guild_ready_timeout=0.1)
        service = ctx.start_chorus(database, options, shown_as="http: chorus serve")
        try:
            service.wait_http(timeout=60)
            service.wait_ready(bots, timeout=60 + bots)
            time.sleep(config.settle)
            per_path: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for run_index in range(config.runs):
                for path in config.http_paths:
                    for saturate in (False, True):
                        mode = "saturate" if saturate else "rate"
                        ctx.progress(f"http run {run_index + 1}/{config.runs}: {bots} bot(s), {path}, {mode}")
                        result = run_load(ctx, service, path, saturate=saturate)
                        ctx.progress(
                            f"  {result['throughput']:.0f} req/s, p50 {result['latency_ms'].get('p50')} ms, "
                            f"p99 {result['latency_ms'].get('p99')} ms, errors {result['errors']}"
                        )
                        per_path.setdefault(path, {}).setdefault(mode, []).append(result)
            by_bots[str(bots)] = per_path
        finally:
            ctx.children.stop(service.child)
            drop_database(ctx.database_url, database)
    return {
        "bots": list(config.http_bots),
        "rate": config.http_rate,
        "duration_s": config.http_duration,
        "saturate_duration_s": config.http_saturate_duration,
        "connections": config.http_connections,
        "runs": config.runs,
        "results": by_bots,
        "summary": summarize(by_bots),
    }


def _median(samples: list[dict[str, Any]], *keys: str) -> float | None:
    values: list[float] = []
    for sample in samples:
        value: Any = sample
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return statistics.median(values) if values else None


def summarize(by_bots: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for bots, per_path in by_bots.items():
        for path, modes in per_path.items():
            rate, saturated = modes.get("rate", []), modes.get("saturate", [])
            rows.append({
                "bots": int(bots),
                "path": path,
                "rate_throughput": _median(rate, "throughput"),
                "rate_p50_ms": _median(rate, "latency_ms", "p50"),
                "rate_p99_ms": _median(rate, "latency_ms", "p99"),
                "rate_p999_ms": _median(rate, "latency_ms", "p999"),
                "rate_max_ms": _median(rate, "latency_ms", "max"),
                "rate_sent_p99_ms": _median(rate, "service_ms", "p99"),
                "rate_server_cpu": _median(rate, "server_cpu_share"),
                "rate_errors": sum(int(s.get("errors", 0)) for s in rate),
                "sat_throughput": _median(saturated, "throughput"),
                "sat_p50_ms": _median(saturated, "latency_ms", "p50"),
                "sat_p99_ms": _median(saturated, "latency_ms", "p99"),
                "sat_server_cpu": _median(saturated, "server_cpu_share"),
                "sat_generator_cpu": _median(saturated, "generator_cpu_share"),
                "sat_errors": sum(int(s.get("errors", 0)) for s in saturated),
                "body_bytes": _median(saturated or rate, "body_bytes"),
                "foreign_cpu": _median(rate + saturated, "foreign_cpu_share"),
            })  # fmt: skip
    return rows


def _row(result: dict[str, Any], bots: int, path: str) -> dict[str, Any] | None:
    return next((r for r in result.get("summary", []) if r["bots"] == bots and r["path"] == path), None)


def targets(result: dict[str, Any]) -> list[Target]:
    row = _row(result, TARGET_BOTS, "/health")
    p99 = row["rate_p99_ms"] if row else None
    return [
        Target(
            goal=f"/health p99 < {HEALTH_P99_GOAL_MS:g} ms at {result.get('rate', 200):g} req/s, "
            f"{TARGET_BOTS} bots connected",
            measured="-" if p99 is None else f"p99 {p99:.2f} ms",
            verdict=verdict(None if p99 is None else p99 < HEALTH_P99_GOAL_MS),
        )
    ]


def render(result: dict[str, Any]) -> str:
    rate = result.get("rate", 0)
    lines = [
        f"Open loop at **{rate:g} requests/s** for {result['duration_s']:g} s (after 1 s of warm-up), "
        "latency counted from when each request was *due*; then a closed loop of "
        f"{result['connections']} connections for {result['saturate_duration_s']:g} s (saturation). "
        f"Medians of {result['runs']} runs. The service had N bots ready; CPU shares are of one core. "
        "*p99 from send* starts the clock when the request was actually written: the gap to p99 is time "
        "the request waited before that (the generator running late, or every connection busy).",
        "",
        f"| bots | path | body (B) | {rate:g}/s p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) "
        "| p99 from send (ms) | service CPU | saturated req/s | p50 (ms) | p99 (ms) | service CPU "
        "| generator CPU | errors | others' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result.get("summary", []):
        errors = row["rate_errors"] + row["sat_errors"]
        lines.append(
            f"| {row['bots']} | `{row['path']}` | {row['body_bytes'] or 0:.0f} | {ms(row['rate_p50_ms'])} "
            f"| {ms(row['rate_p99_ms'])} | {ms(row['rate_p999_ms'])} | {ms(row['rate_max_ms'])} "
            f"| {ms(row.get('rate_sent_p99_ms'))} "
            f"| {_share(row['rate_server_cpu'])} | {row['sat_throughput'] or 0:.0f} "
            f"| {ms(row['sat_p50_ms'])} | {ms(row['sat_p99_ms'])} | {_share(row['sat_server_cpu'])} "
            f"| {_share(row['sat_generator_cpu'])} "
            f"| {errors} | {percent(row.get('foreign_cpu'))} |"
        )
    lines.append("")
    baseline_bots = min(result.get("bots", [TARGET_BOTS]))
    for path in ("/health", "/bots"):
        many, one = _row(result, TARGET_BOTS, path), _row(result, baseline_bots, path)
        if many and one and one["sat_throughput"] and many["sat_throughput"] and baseline_bots != TARGET_BOTS:
            lines.append(
                f"- `{path}`: saturated throughput with {TARGET_BOTS} bots is "
                f"{many['sat_throughput'] / one['sat_throughput']:.2f}x that with {baseline_bots} bot "
                f"({many['sat_throughput']:.0f} against {one['sat_throughput']:.0f} req/s)."
            )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"
