"""Benchmark 5, monitoring: `GET /metrics` with N bots connected (the issue's goal: < 50 ms at 1,000).

`chorus serve` runs with N ready bots, each connected to a fake Lavalink node (so every bot's
node report is part of the scrape). Once the service is idle (its startup work done), the harness
scrapes `/metrics` sequentially, as one Prometheus would, and times each request from send to
last byte over loopback: the collector walking every runner, the exposition, and the HTTP round
trip.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from typing import Any

from benchmarks.commands import percentile
from benchmarks.context import BenchContext
from benchmarks.processes import wait_until_idle
from benchmarks.service import (
    ServiceOptions,
    drop_database,
    new_database_name,
    seed_bots,
    start_fake_lavalink,
)
from benchmarks.targets import Target, ms, verdict

_log = logging.getLogger(__name__)

NAME = "metrics"
TITLE = "Monitoring: GET /metrics with N bots connected"
GOAL_MS = 50.0
GOAL_BOTS = 1000


def scrape(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  # loopback, our own service
        body = response.read()
    return (time.perf_counter() - started) * 1000, len(body)


def run(ctx: BenchContext) -> dict[str, Any]:
    bots = ctx.world.bots[: ctx.config.metrics_bots]
    node = start_fake_lavalink(ctx.children, ctx.work_dir, tracks=1)
    ctx.record_command("metrics: fake Lavalink", node.command)
    database = new_database_name("metrics")
    seed_bots(ctx.database_url, database, ctx.key, bots)
    try:
        options = ServiceOptions(guild_ready_timeout=0.1, lavalink_nodes=node.lavalink_nodes)
        service = ctx.start_chorus(database, options, shown_as="metrics: chorus serve")
        try:
            service.wait_http(timeout=120)
            service.wait_ready(len(bots), timeout=600)
            ctx.progress(f"  metrics: {len(bots)} bots ready")
            idle = wait_until_idle(service.child.pid)
            ctx.progress(f"  metrics: the service is idle {idle:.1f} s later (its own startup work done)")
            url = service.url("/metrics")
            for _ in range(3):
                scrape(url)  # warm-up (first-use imports, connection setup)
            ctx.wait_for_quiet()
            samples = [scrape(url) for _ in range(ctx.config.metrics_scrapes)]
            # The same requests to /health: what HTTP alone costs on this machine right now.
            health = [scrape(service.url("/health"))[0] for _ in range(ctx.config.metrics_scrapes)]
        finally:
            ctx.children.stop(service.child)
    finally:
        drop_database(ctx.database_url, database)
        ctx.children.stop(node.child)
    durations = [duration for duration, _ in samples]
    summary = {
        "bots": len(bots),
        "scrapes": len(samples),
        "p50_ms": percentile(durations, 50),
        "p95_ms": percentile(durations, 95),
        "max_ms": max(durations),
        "bytes": samples[-1][1],
        "health_p50_ms": percentile(health, 50),
    }
    ctx.progress(f"  metrics: p50 {ms(summary['p50_ms'])} ms, p95 {ms(summary['p95_ms'])} ms, "
                 f"{summary['bytes']} bytes; /health p50 {ms(summary['health_p50_ms'])} ms")  # fmt: skip
    return {"summary": summary, "durations_ms": [round(d, 3) for d in durations]}


def targets(result: dict[str, Any]) -> list[Target]:
    s = result["summary"]
    ok = s["p95_ms"] < GOAL_MS if s["bots"] >= GOAL_BOTS else None
    note = "" if s["bots"] >= GOAL_BOTS else f"measured at {s['bots']} bots, not {GOAL_BOTS}"
    return [Target(f"/metrics p95 < {GOAL_MS:g} ms at {GOAL_BOTS} bots", f"p95 {ms(s['p95_ms'])} ms",
                   verdict(ok), note)]  # fmt: skip


def render(result: dict[str, Any]) -> str:
    s = result["summary"]
    return "\n".join(
        [
            f"{s['bots']} bots ready, each connected to one fake Lavalink node; `/metrics` scraped "
            f"{s['scrapes']} times in a row, each timed from send to last byte over loopback; then "
            "`/health` as many times, for what the HTTP round trip alone costs.",
            "",
            "| bots | scrapes | p50 ms | p95 ms | max ms | response bytes | /health p50 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {s['bots']} | {s['scrapes']} | {ms(s['p50_ms'])} | {ms(s['p95_ms'])} | {ms(s['max_ms'])} "
            f"| {s['bytes']} | {ms(s['health_p50_ms'])} |",
        ]
    )
