"""Benchmark 5, several workers: N bots over 2 workers against 1, and takeover after a SIGKILL.

Ready: every worker (`chorus serve` on the same database, its own HTTP port) is spawned at the
same moment; the time runs from the first spawn until the first worker's `/health` (which
describes the whole fleet) reports N active bots and none without a live worker, and its
`/workers` shows the shares settled (within one of each other). CPU is the sum
over the workers at that moment; memory is read after the settle time, summed and per worker.
With one worker the same code runs (a fleet of one).

Takeover: two workers with M bots, ready; the one listed first in `/workers` is SIGKILLed (it
releases nothing) and the time runs until the survivor's `/health` reports M active bots again,
with the moment it first calls the victim `dead` (its heartbeat observed still for LEASE_TTL)
in between. Median of the runs.
"""

from __future__ import annotations

import logging
import signal
import statistics
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.processes import (
    BenchError,
    Child,
    cpu_reading,
    cpu_seconds,
    foreign_cpu_share,
    pss_bytes,
    rss_bytes,
    wait_until,
)
from benchmarks.service import (
    ChorusProcess,
    ServiceOptions,
    drop_database,
    new_database_name,
    seed_bots,
    start_chorus,
)
from benchmarks.targets import Target, mib, percent, seconds, verdict

_log = logging.getLogger(__name__)

NAME = "workers"
TITLE = "Several workers: N bots over 2 workers against 1, takeover after SIGKILL"
POLL = 0.05
DEFAULT_LEASE_TTL = 15.0  # the service's default; reported with the takeover numbers


@dataclass(frozen=True)
class Fleet:
    workers: list[ChorusProcess]
    database: str

    @property
    def children(self) -> list[Child]:
        return [worker.child for worker in self.workers]


def _start_fleet(ctx: BenchContext, bots: int, count: int, label: str) -> Fleet:
    database = new_database_name(f"workers{count}x{bots}")
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots])
    options = ServiceOptions(guild_ready_timeout=ctx.config.workers_ready_timeout,
                             lease_ttl=ctx.config.workers_lease_ttl)  # fmt: skip
    workers = [
        start_chorus(
            ctx.children,
            ctx.world,
            database_url=ctx.database_url,
            database=database,
            key=ctx.key,
            options=options,
        )
        for _ in range(count)
    ]
    ctx.record_command(f"workers: chorus serve, {label}", workers[0].command)
    return Fleet(workers, database)


def _stop_fleet(ctx: BenchContext, fleet: Fleet) -> None:
    for child in fleet.children:  # every SIGTERM first: the workers drain in parallel
        if child.alive():
            child.process.terminate()
    for child in fleet.children:
        ctx.children.stop(child, timeout=60)
    drop_database(ctx.database_url, fleet.database)


def _fleet_ready(worker: ChorusProcess, bots: int, workers: int) -> bool:
    """Every bot active, none without a live worker, and the fleet settled: `workers` active
    workers holding shares within one of each other. Workers spawned together each claim from
    what they see first, then hand a few bots over once they see each other: until then the
    fleet is not done starting."""
    health = worker.get_json("/health", timeout=5.0)
    if health is None or health.get("activeBots") != bots or health.get("unownedBots") != 0:
        return False
    spread = _bots_per_worker(worker)
    return len(spread) == workers and sum(spread) == bots and spread[0] - spread[-1] <= 1


def _bots_per_worker(worker: ChorusProcess) -> list[int]:
    listing = worker.get_json("/workers", timeout=5.0) or {}
    return sorted((w["bots"] for w in listing.get("workers", []) if w["state"] == "active"), reverse=True)


def measure_ready(ctx: BenchContext, bots: int, count: int) -> dict[str, Any]:
    quiet = ctx.wait_for_quiet()
    before = cpu_reading(ctx.children)
    fleet = _start_fleet(ctx, bots, count, f"{count} worker(s)")
    try:
        started = min(child.started_at for child in fleet.children)
        first = fleet.workers[0]
        first.wait_http(timeout=60)
        what = f"{bots} bots ready over {count} worker(s)"
        ready = wait_until(lambda: _fleet_ready(first, bots, count), timeout=120 + bots / 10, interval=POLL,
                           what=what, watch=fleet.children)  # fmt: skip
        cpu_at_ready = [cpu_seconds(child.pid) for child in fleet.children]
        rss_at_ready = [rss_bytes(child.pid) for child in fleet.children]
        spread = _bots_per_worker(first)
        time.sleep(ctx.config.settle)
        if not _fleet_ready(first, bots, count):
            raise BenchError(f"the fleet of {count} worker(s) did not stay ready during the settle time")
        rss_idle = [rss_bytes(child.pid) for child in fleet.children]
        pss_idle = [pss_bytes(child.pid) for child in fleet.children]
        cpu_idle = [cpu_seconds(child.pid) for child in fleet.children]
    finally:
        _stop_fleet(ctx, fleet)
    ready_s = ready - started
    return {
        "ready_s": round(ready_s, 3),
        "cpu_at_ready_s": round(sum(cpu_at_ready), 3),
        "cpu_per_worker_s": [round(c, 3) for c in cpu_at_ready],
        # CPU seconds per second of wall time until ready: above 1.0 only with several cores at work.
        "cores_used": round(sum(cpu_at_ready) / ready_s, 2) if ready_s > 0 else None,
        "cpu_during_settle_s": round(sum(cpu_idle) - sum(cpu_at_ready), 3),
        "rss_at_ready": sum(rss_at_ready),
        "rss_idle": sum(rss_idle),
        "rss_idle_per_worker": rss_idle,
        "pss_idle": sum(p for p in pss_idle if p is not None)
        if all(p is not None for p in pss_idle)
        else None,
        "bots_per_worker": spread,
        "foreign_cpu_before": round(quiet, 3),
        "foreign_cpu_share": round(foreign_cpu_share(before, cpu_reading(ctx.children)), 3),
    }


def measure_takeover(ctx: BenchContext, bots: int) -> dict[str, Any]:
    quiet = ctx.wait_for_quiet()
    before = cpu_reading(ctx.children)
    fleet = _start_fleet(ctx, bots, 2, "takeover")
    try:
        first = fleet.workers[0]
        first.wait_http(timeout=60)
        for worker in fleet.workers:
            wait_until(lambda w=worker: _fleet_ready(w, bots, 2), timeout=120 + bots / 10, interval=POLL,
                       what=f"{bots} bots ready over 2 workers", watch=fleet.children)  # fmt: skip
        listing = first.get_json("/workers", timeout=5.0) or {}
        me = next((w for w in listing.get("workers", []) if w.get("me")), None)
        if me is None:
            raise BenchError("the first worker does not list itself in /workers")
        victim, survivor = fleet.workers[0], fleet.workers[1]
        victim_bots = me["bots"]
        killed = time.monotonic()
        victim.child.process.send_signal(signal.SIGKILL)
        victim.child.process.wait(timeout=30)

        def victim_dead() -> bool:
            listed = survivor.get_json("/workers", timeout=5.0) or {}
            return not any(w["id"] == me["id"] and w["state"] != "dead" for w in listed.get("workers", []))

        dead = wait_until(victim_dead, timeout=120, interval=POLL, what="the survivor to see the victim dead",
                          watch=[survivor.child])  # fmt: skip
        ready = wait_until(lambda: _fleet_ready(survivor, bots, 1), timeout=120 + bots / 10, interval=POLL,
                           what="the survivor to run every bot", watch=[survivor.child])  # fmt: skip
    finally:
        _stop_fleet(ctx, fleet)
    return {
        "bots": bots,
        "taken_over": victim_bots,
        "dead_after_s": round(dead - killed, 3),
        "ready_after_s": round(ready - killed, 3),
        "foreign_cpu_before": round(quiet, 3),
        "foreign_cpu_share": round(foreign_cpu_share(before, cpu_reading(ctx.children)), 3),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    config = ctx.config
    bots = config.workers_bots
    if max(bots, config.takeover_bots) > len(ctx.world.bots):
        raise BenchError("the fake Discord has fewer bots than the workers benchmark needs")
    ready: dict[str, list[dict[str, Any]]] = {}
    for run_index in range(config.runs):
        for count in config.worker_counts:
            ctx.progress(f"workers run {run_index + 1}/{config.runs}: {bots} bots over {count} worker(s)")
            try:
                sample = measure_ready(ctx, bots, count)
            except BenchError as exc:  # one bad sample is reported, not the end of the benchmark
                ctx.progress(f"  failed: {exc}")
                ready.setdefault(str(count), []).append({"failed": str(exc)})
                continue
            rss = sample["rss_idle"] / 2**20
            ctx.progress(f"  ready {sample['ready_s']:.2f}s, CPU {sample['cpu_at_ready_s']:.1f}s, idle RSS "
                         f"{rss:.0f} MiB, spread {sample['bots_per_worker']}")  # fmt: skip
            ready.setdefault(str(count), []).append(sample)
    takeovers: list[dict[str, Any]] = []
    for run_index in range(config.takeover_runs):
        ctx.progress(f"takeover run {run_index + 1}/{config.takeover_runs}: SIGKILL one of 2 workers "
                     f"with {config.takeover_bots} bots")  # fmt: skip
        try:
            sample = measure_takeover(ctx, config.takeover_bots)
        except BenchError as exc:
            ctx.progress(f"  failed: {exc}")
            takeovers.append({"failed": str(exc)})
            continue
        ctx.progress(f"  {sample['taken_over']} bots ready again {sample['ready_after_s']:.2f}s after the "
                     f"SIGKILL (dead after {sample['dead_after_s']:.2f}s)")  # fmt: skip
        takeovers.append(sample)
    return {
        "bots": bots,
        "worker_counts": list(config.worker_counts),
        "runs": config.runs,
        "settle_s": config.settle,
        "lease_ttl": config.workers_lease_ttl or DEFAULT_LEASE_TTL,
        "guild_ready_timeout": config.workers_ready_timeout,
        "ready": ready,
        "takeovers": takeovers,
        "summary": summarize(ready, takeovers),
    }


def _median(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if s.get(key) is not None]
    return statistics.median(values) if values else None


def _failures(samples: list[dict[str, Any]]) -> list[str]:
    return [s["failed"] for s in samples if "failed" in s]


def summarize(ready: dict[str, list[dict[str, Any]]], takeovers: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the samples that completed; the failed ones are counted (and their reasons
    kept in the results), never silently dropped."""
    failed_ready = {count: len(_failures(samples)) for count, samples in ready.items()}
    ready = {count: [s for s in samples if "failed" not in s] for count, samples in ready.items()}
    failed_takeovers = len(_failures(takeovers))
    takeovers = [s for s in takeovers if "failed" not in s]
    rows = [
        {
            "workers": int(count),
            "ready_s": _median(samples, "ready_s"),
            "cpu_at_ready_s": _median(samples, "cpu_at_ready_s"),
            "cores_used": _median(samples, "cores_used"),
            "rss_idle": _median(samples, "rss_idle"),
            "pss_idle": _median(samples, "pss_idle"),
            "rss_idle_per_worker": max((max(s["rss_idle_per_worker"]) for s in samples), default=None),
            "bots_per_worker": samples[-1]["bots_per_worker"] if samples else [],
            "foreign_cpu": _median(samples, "foreign_cpu_share"),
            "samples": len(samples),
            "failed": failed_ready[count],
        }
        for count, samples in ready.items()
    ]
    one = next((r for r in rows if r["workers"] == 1), None)
    two = next((r for r in rows if r["workers"] == 2), None)
    ratios: dict[str, float | None] = {"ready": None, "cpu": None, "rss": None}
    if one and two:
        for key, field in (("ready", "ready_s"), ("cpu", "cpu_at_ready_s"), ("rss", "rss_idle")):
            if one[field] and two[field]:
                ratios[key] = round(two[field] / one[field], 3)
    return {
        "rows": rows,
        "two_over_one": ratios,
        "takeover_ready_median_s": _median(takeovers, "ready_after_s"),
        "takeover_dead_median_s": _median(takeovers, "dead_after_s"),
        "taken_over_median": _median(takeovers, "taken_over"),
        "takeover_failed": failed_takeovers,
    }


def targets(result: dict[str, Any]) -> list[Target]:
    summary = result["summary"]
    ratio = summary["two_over_one"].get("ready")
    takeover = summary.get("takeover_ready_median_s")
    ttl = result["lease_ttl"]
    return [
        Target(
            goal=f"{result['bots']} bots over 2 workers ready sooner than on 1 (same machine)",
            measured="-" if ratio is None else f"{ratio:.2f}x the time of 1 worker",
            verdict=verdict(None if ratio is None else ratio < 1.0),
            note="2 cores shared with the database and the fake Discord",
        ),
        Target(
            goal=f"after a SIGKILL, its bots ready elsewhere within LEASE_TTL + 10 s ({ttl + 10:g} s)",
            measured=f"{seconds(takeover)} s (median)",
            verdict=verdict(None if takeover is None else takeover <= ttl + 10),
            note=f"{summary.get('taken_over_median') or '-'} bots taken over, LEASE_TTL {ttl:g} s",
        ),
    ]


def render(result: dict[str, Any]) -> str:
    summary = result["summary"]
    grt = result.get("guild_ready_timeout")
    lines = [
        f"{result['bots']} bots (every bot in one guild), `GUILD_READY_TIMEOUT` "
        f"{'default (2 s)' if grt is None else f'{grt:g} s'}, `LEASE_TTL` {result['lease_ttl']:g} s. Every "
        "worker is a `chorus serve` on the same database, spawned at the same moment; ready is from the "
        "first spawn until the first worker's `/health` (the whole fleet) reports every bot active and "
        "none without a live worker, with the shares settled within one. CPU is summed over the "
        'workers until that moment; "cores used" '
        f"is that CPU per second of ready time. Memory is read {result['settle_s']:g} s later. "
        f"Medians of the runs that completed, of {result['runs']}.",
        "",
        "| workers | ready (s) | CPU to ready (s) | cores used | idle RSS, all workers (MiB) "
        "| idle PSS, all (MiB) | largest worker RSS (MiB) | bots per worker | others' CPU "
        "| runs ok / failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in summary["rows"]:
        lines.append(
            f"| {row['workers']} | {seconds(row['ready_s'])} | {seconds(row['cpu_at_ready_s'])} "
            f"| {seconds(row['cores_used'])} | {mib(row['rss_idle'], 0)} | {mib(row['pss_idle'], 0)} "
            f"| {mib(row['rss_idle_per_worker'], 0)} | {', '.join(map(str, row['bots_per_worker']))} "
            f"| {percent(row['foreign_cpu'])} | {row.get('samples', '-')} / {row.get('failed', 0)} |"
        )
    ratios = summary["two_over_one"]
    if ratios.get("ready") is not None:
        lines += [
            "",
            f"2 workers against 1: ready time {ratios['ready']:.2f}x, CPU {_x(ratios['cpu'])}, "
            f"idle memory {_x(ratios['rss'])}. Each worker is one event loop (one core at most): a "
            "second worker can only start the fleet sooner when a core is idle for it (here the "
            "database, the fake Discord and other jobs shared the same two cores), and it pays a "
            "second interpreter, its imports and its database connections.",
        ]
    lines += [
        "",
        f"**Takeover after SIGKILL**: two workers run {_takeover_bots(result)} bots; the first is killed "
        "(it releases nothing). `dead` is when the survivor's `/workers` first calls it dead (its "
        "heartbeat observed standing still for `LEASE_TTL`); `ready` when its `/health` reports every "
        "bot active again.",
        "",
        "| run | bots taken over | dead after (s) | ready after (s) | others' CPU |",
        "|---:|---:|---:|---:|---:|",
    ]
    for index, sample in enumerate(result["takeovers"], 1):
        if "failed" in sample:
            lines.append(f"| {index} | failed: {sample['failed']} | | | |")
            continue
        lines.append(
            f"| {index} | {sample['taken_over']} | {seconds(sample['dead_after_s'])} "
            f"| {seconds(sample['ready_after_s'])} | {percent(sample.get('foreign_cpu_share'))} |"
        )
    dead, ready = summary.get("takeover_dead_median_s"), summary.get("takeover_ready_median_s")
    taken = summary.get("taken_over_median") or "-"
    lines.append(f"| **median** | {taken} | {seconds(dead)} | **{seconds(ready)}** | |")
    return "\n".join(lines)


def _takeover_bots(result: dict[str, Any]) -> str:
    done = [s for s in result["takeovers"] if "bots" in s]
    return str(done[0]["bots"]) if done else "-"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
