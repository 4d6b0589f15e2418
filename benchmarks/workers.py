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

Burst: the commands benchmark's `/play` burst (benchmarks/commands.py: the fake Discord sends 50
`/play` at once from users sitting in 10 voice channels, user i to bot i mod 10, and times each
from its INTERACTION_CREATE to the first callback; the fake Lavalink plays) against a fleet of 10
bots over 1 worker, then over 2. With 2 workers the bots are listed alternately by worker before
user i is sent to bot i mod 10, so every channel's users reach bots of both workers: the
interactions that arrive at a bot of worker X while the channel's bot is on worker Y are
forwarded (docs/SCALING.md, "Forwarding") and answered by Y. Which ones were is read from the
fleet's `fleet_requests` (by interaction id), so the report splits the latencies into answered
where received and forwarded. One cold burst (no bot in voice yet) and the warm ones after it,
per run; the variants alternate, run after run, so a change in the machine's load lands on both.
"""

from __future__ import annotations

import logging
import signal
import statistics
import time
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from benchmarks.commands import STARTUP_READY_TIMEOUT, burst, percentile, wait_for_sessions
from benchmarks.context import BenchContext
from benchmarks.processes import (
    BenchError,
    Child,
    cpu_reading,
    cpu_seconds,
    foreign_cpu_share,
    rss_bytes,
    usage,
    wait_until,
)
from benchmarks.service import (
    ChorusProcess,
    FakeBotInfo,
    ServiceOptions,
    drop_database,
    new_database_name,
    post_json,
    seed_bots,
    start_fake_lavalink,
)
from benchmarks.targets import Target, mib, ms, percent, seconds, verdict

_log = logging.getLogger(__name__)

NAME = "workers"
TITLE = "Several workers: N bots over 2 workers against 1, takeover after SIGKILL, /play bursts"
POLL = 0.05
DEFAULT_LEASE_TTL = 15.0  # the service's default; reported with the takeover numbers


@dataclass(frozen=True)
class Fleet:
    workers: list[ChorusProcess]
    database: str

    @property
    def children(self) -> list[Child]:
        return [worker.child for worker in self.workers]


def _start_fleet(ctx: BenchContext, bots: int, count: int, label: str, options: ServiceOptions | None = None,
                 seeded: list[FakeBotInfo] | None = None) -> Fleet:  # fmt: skip
    database = new_database_name(f"workers{count}x{bots}")
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots] if seeded is None else seeded)
    if options is None:
        options = ServiceOptions(guild_ready_timeout=ctx.config.workers_ready_timeout,
                                 lease_ttl=ctx.config.workers_lease_ttl)  # fmt: skip
    # Every worker's command line is the same (its port is a placeholder): the report shows it once.
    workers = [
        ctx.start_chorus(database, options, shown_as=f"workers: chorus serve, {label}") for _ in range(count)
    ]
    return Fleet(workers, database)


def _stop_fleet(ctx: BenchContext, fleet: Fleet) -> None:
    ctx.children.stop_together(fleet.children, timeout=60)  # the workers drain in parallel
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
        idle = usage(fleet.children)
    finally:
        _stop_fleet(ctx, fleet)
    ready_s = ready - started
    return {
        "ready_s": round(ready_s, 3),
        "cpu_at_ready_s": round(sum(cpu_at_ready), 3),
        "cpu_per_worker_s": [round(c, 3) for c in cpu_at_ready],
        # CPU seconds per second of wall time until ready: above 1.0 only with several cores at work.
        "cores_used": round(sum(cpu_at_ready) / ready_s, 2) if ready_s > 0 else None,
        "cpu_during_settle_s": round(sum(idle.cpu) - sum(cpu_at_ready), 3),
        "rss_at_ready": sum(rss_at_ready),
        "rss_idle": sum(idle.rss),
        "rss_idle_per_worker": idle.rss,
        "pss_idle": idle.pss_total,
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
        # Every lease the survivor's (the whole fleet's) now: the reap, the freeing and the claims.
        claimed = wait_until(lambda: _bots_per_worker(survivor) == [bots], timeout=120, interval=POLL,
                             what="the survivor to hold every lease", watch=[survivor.child])  # fmt: skip
        ready = wait_until(lambda: _fleet_ready(survivor, bots, 1), timeout=120 + bots / 10, interval=POLL,
                           what="the survivor to run every bot", watch=[survivor.child])  # fmt: skip
    finally:
        _stop_fleet(ctx, fleet)
    return {
        "bots": bots,
        "taken_over": victim_bots,
        "dead_after_s": round(dead - killed, 3),
        "claimed_after_s": round(claimed - killed, 3),
        "ready_after_s": round(ready - killed, 3),
        "foreign_cpu_before": round(quiet, 3),
        "foreign_cpu_share": round(foreign_cpu_share(before, cpu_reading(ctx.children)), 3),
    }


def _alternating(worker: ChorusProcess, bots: list[FakeBotInfo]) -> tuple[list[FakeBotInfo], dict[str, str]]:
    """The bots listed alternately by the worker that runs them (A, B, A, B...; the rest of the
    larger share last), and each bot's worker, from `/bots` (which describes the whole fleet)."""
    listing = worker.get_json("/bots", timeout=10.0) or {}
    owner = {str(b.get("clientId")): str(b.get("worker")) for b in listing.get("bots", [])}
    groups: dict[str, list[FakeBotInfo]] = {}
    for bot in bots:
        groups.setdefault(owner.get(str(bot.client_id), "?"), []).append(bot)
    ordered: list[FakeBotInfo] = []
    lists = sorted(groups.values(), key=len, reverse=True)
    for index in range(max((len(group) for group in lists), default=0)):
        ordered += [group[index] for group in lists if index < len(group)]
    return ordered, owner


def _requests(database_url: str, database: str) -> dict[str, str]:
    """Forwarded interactions so far: interaction id -> the request's status (taken: the acting
    worker answered; cancelled: nobody claimed it, the receiver answered "not responding")."""
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    try:
        found = client[database]["fleet_requests"].find({}, {"payload.id": 1, "status": 1})
        return {str(doc["payload"]["id"]): str(doc["status"]) for doc in found}
    finally:
        client.close()


def _wait_for_fleet(fleet: Fleet, bots: int, count: int) -> None:
    """Every worker sees every bot active with the shares settled (each answers from its mirror)."""
    fleet.workers[0].wait_http(timeout=60)
    for worker in fleet.workers:
        wait_until(lambda w=worker: _fleet_ready(w, bots, count), timeout=120 + bots / 10, interval=POLL,
                   what=f"{bots} bots ready over {count} worker(s)", watch=fleet.children)  # fmt: skip


def measure_burst(ctx: BenchContext, count: int) -> dict[str, Any]:
    """One fleet of `play_bots` bots over `count` workers in a fresh guild and database: the cold
    burst, then `play_warm_rounds` warm ones; each sample marked forwarded or not."""
    config = ctx.config
    bots = ctx.world.bots[-config.play_bots :]
    per_channel = max(1, config.play_users // len(bots))
    node = start_fake_lavalink(ctx.children, ctx.work_dir, tracks=(config.play_warm_rounds + 1) * 100)
    fleet: Fleet | None = None
    try:
        world = post_json(ctx.world.control_url + "/bench/voice-guild",
                          {"bots": [b.client_id for b in bots], "channels": len(bots),
                           "users_per_channel": per_channel}, timeout=30)  # fmt: skip
        options = ServiceOptions(guild_ready_timeout=STARTUP_READY_TIMEOUT,
                                 lavalink_nodes=node.lavalink_nodes,
                                 lease_ttl=config.workers_lease_ttl)  # fmt: skip
        fleet = _start_fleet(ctx, len(bots), count, f"/play burst, {count} worker(s)", options, bots)
        _wait_for_fleet(fleet, len(bots), count)
        sessions = wait_for_sessions(node.control_url, len(bots), timeout=60)
        ordered, owner = _alternating(fleet.workers[0], bots)
        bursts: list[dict[str, Any]] = []
        for number in range(1 + config.play_warm_rounds):
            kind = "cold" if number == 0 else "warm"
            ctx.wait_for_quiet()
            cpu_before = sum(cpu_seconds(child.pid) for child in fleet.children)
            samples = burst(ctx, world, ordered, number)
            cpu = sum(cpu_seconds(child.pid) for child in fleet.children) - cpu_before
            time.sleep(0.3)  # let the last callbacks' followups (now-playing messages) pass
            forwarded = _requests(ctx.database_url, fleet.database)
            for sample in samples:
                sample["forwarded"] = forwarded.get(str(sample.get("interaction")))
            summary = _burst_summary(samples)
            ctx.progress(f"  burst {number + 1} ({kind}, {count} worker(s)): p50 {ms(summary['p50_ms'])} ms, "
                         f"p95 {ms(summary['p95_ms'])} ms, {summary['forwarded']} forwarded, "
                         f"{summary['errors']} error(s)")  # fmt: skip
            bursts.append({"kind": kind, "workers_cpu_s": round(cpu, 3), "summary": summary,
                           "samples": samples})  # fmt: skip
        spread = _bots_per_worker(fleet.workers[0])
    finally:
        if fleet is not None:
            _stop_fleet(ctx, fleet)
        ctx.children.stop(node.child)
    return {"workers": count, "users": len(world["users"]), "sessions": sessions, "bots_per_worker": spread,
            "workers_of_bots": len(set(owner.values())), "bursts": bursts}  # fmt: skip


def _burst_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Latency to the first answer of every /play, and of the forwarded and the local ones apart."""

    def times(chosen: list[dict[str, Any]]) -> list[float]:
        return [s["ms"] for s in chosen if s.get("ms") is not None]

    every = times(samples)
    forwarded = [s for s in samples if s.get("forwarded")]
    local = [s for s in samples if not s.get("forwarded")]
    return {
        "count": len(samples),
        "answered": len(every),
        "errors": sum(1 for s in samples if s.get("error")),
        "p50_ms": percentile(every, 50),
        "p95_ms": percentile(every, 95),
        "max_ms": max(every) if every else None,
        "forwarded": len(forwarded),
        "not_claimed": sum(1 for s in forwarded if s["forwarded"] != "taken"),
        "forwarded_p50_ms": percentile(times(forwarded), 50),
        "forwarded_p95_ms": percentile(times(forwarded), 95),
        "local_p50_ms": percentile(times(local), 50),
        "local_p95_ms": percentile(times(local), 95),
    }


BURST_KEYS = ("p50_ms", "p95_ms", "forwarded_p50_ms", "forwarded_p95_ms", "local_p50_ms", "local_p95_ms")


def _burst_run_summary(rep: dict[str, Any]) -> dict[str, Any]:
    """One run's cold burst and its warm bursts pooled, with the forwarded share and CPU per /play."""
    found: dict[str, Any] = {}
    for kind in ("cold", "warm"):
        chosen = [b for b in rep["bursts"] if b["kind"] == kind]
        samples = [s for b in chosen for s in b["samples"]]
        summary = _burst_summary(samples)
        summary["forwarded_share"] = round(summary["forwarded"] / len(samples), 3) if samples else None
        summary["cpu_ms_per_play"] = (
            round(sum(b["workers_cpu_s"] for b in chosen) * 1000 / len(samples), 2) if samples else None
        )
        found[kind] = summary
    return found


def summarize_bursts(bursts: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per worker count and burst kind, medians over the runs that completed; 2 over 1 ratios."""
    rows: list[dict[str, Any]] = []
    for count, reps in bursts.items():
        done = [_burst_run_summary(rep) for rep in reps if "failed" not in rep]
        for kind in ("cold", "warm"):
            parts = [d[kind] for d in done]
            row: dict[str, Any] = {"workers": int(count), "kind": kind, "runs": len(done),
                                   "failed": len(reps) - len(done)}  # fmt: skip
            for key in (*BURST_KEYS, "forwarded_share", "cpu_ms_per_play"):
                row[key] = _median(parts, key)
            row["plays"] = sum(p["count"] for p in parts)
            row["errors"] = sum(p["errors"] for p in parts)
            row["forwarded"] = sum(p["forwarded"] for p in parts)
            row["not_claimed"] = sum(p["not_claimed"] for p in parts)
            rows.append(row)
    ratios: dict[str, float | None] = {}
    for kind in ("cold", "warm"):
        one = next((r for r in rows if r["workers"] == 1 and r["kind"] == kind), None)
        two = next((r for r in rows if r["workers"] == 2 and r["kind"] == kind), None)
        for key in ("p50_ms", "p95_ms", "cpu_ms_per_play"):
            ratio = None
            if one and two and one[key] and two[key] is not None:
                ratio = round(two[key] / one[key], 3)
            ratios[f"{kind}.{key}"] = ratio
    return {"rows": rows, "two_over_one": ratios}


def run(ctx: BenchContext) -> dict[str, Any]:
    config = ctx.config
    bots = config.workers_bots
    if max(bots, config.takeover_bots, config.play_bots) > len(ctx.world.bots):
        raise BenchError("the fake Discord has fewer bots than the workers benchmark needs")
    bursts: dict[str, list[dict[str, Any]]] = {}
    for run_index in range(config.workers_play_runs):  # first: the smallest part, and the new one
        for count in config.worker_counts:
            ctx.progress(f"burst run {run_index + 1}/{config.workers_play_runs}: {config.play_users} /play "
                         f"over {config.play_bots} bots on {count} worker(s)")  # fmt: skip
            try:
                bursts.setdefault(str(count), []).append(measure_burst(ctx, count))
            except BenchError as exc:
                ctx.progress(f"  failed: {exc}")
                bursts.setdefault(str(count), []).append({"failed": str(exc)})
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
                     f"SIGKILL (dead after {sample['dead_after_s']:.2f}s, every lease claimed after "
                     f"{sample['claimed_after_s']:.2f}s)")  # fmt: skip
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
        "play_bots": config.play_bots,
        "play_users": config.play_users,
        "play_warm_rounds": config.play_warm_rounds,
        "play_runs": config.workers_play_runs,
        "bursts": {count: [_without_samples(rep) for rep in reps] for count, reps in bursts.items()},
        "burst_summary": summarize_bursts(bursts),
    }


def _without_samples(rep: dict[str, Any]) -> dict[str, Any]:
    """A run as kept in performance.json: each burst's summary, not its 50 samples."""
    if "failed" in rep:
        return rep
    return {**rep, "bursts": [{k: v for k, v in b.items() if k != "samples"} for b in rep["bursts"]],
            "summary": _burst_run_summary(rep)}  # fmt: skip


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
        "takeover_claimed_median_s": _median(takeovers, "claimed_after_s"),
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
        *_burst_targets(result),
    ]


DISCORD_ANSWER_S = 3.0


def _burst_targets(result: dict[str, Any]) -> list[Target]:
    """A forwarded /play must be answered within Discord's 3 s (issue 13); older reports have no bursts."""
    rows = result.get("burst_summary", {}).get("rows", [])
    two = [r for r in rows if r["workers"] == 2 and r["runs"]]
    if not two:
        return []
    worst = max((r["forwarded_p95_ms"] for r in two if r["forwarded_p95_ms"] is not None), default=None)
    forwarded = sum(r["forwarded"] for r in two)
    missed = sum(r["not_claimed"] + r["errors"] for r in two)
    ok = None if worst is None else worst < DISCORD_ANSWER_S * 1000 and missed == 0
    return [
        Target(
            goal=f"a forwarded /play answered within Discord's {DISCORD_ANSWER_S:g} s (2 workers, p95)",
            measured=f"{ms(worst, 0)} ms ({missed} unanswered or not claimed of {forwarded})",
            verdict=verdict(ok),
            note=f"{result['play_users']} /play at once over {result['play_bots']} bots, cold and warm",
        )
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
        "heartbeat observed standing still for `LEASE_TTL`); `claimed` when its `/workers` shows it "
        "holding every lease (the victim reaped, its leases freed and claimed); `ready` when its "
        "`/health` reports every bot active again.",
        "",
        "| run | bots taken over | dead after (s) | claimed after (s) | ready after (s) | others' CPU |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for index, sample in enumerate(result["takeovers"], 1):
        if "failed" in sample:
            lines.append(f"| {index} | failed: {sample['failed']} | | | | |")
            continue
        lines.append(
            f"| {index} | {sample['taken_over']} | {seconds(sample['dead_after_s'])} "
            f"| {seconds(sample.get('claimed_after_s'))} "
            f"| {seconds(sample['ready_after_s'])} | {percent(sample.get('foreign_cpu_share'))} |"
        )
    dead, ready = summary.get("takeover_dead_median_s"), summary.get("takeover_ready_median_s")
    claimed = summary.get("takeover_claimed_median_s")
    taken = summary.get("taken_over_median") or "-"
    lines.append(f"| **median** | {taken} | {seconds(dead)} | {seconds(claimed)} | **{seconds(ready)}** | |")
    if "burst_summary" in result:
        lines += ["", *_render_bursts(result)]
    return "\n".join(lines)


def _render_bursts(result: dict[str, Any]) -> list[str]:
    summary = result["burst_summary"]
    lines = [
        f"**A burst of {result['play_users']} `/play` over 2 workers against 1**: "
        f"{result['play_bots']} bots, "
        f"{result['play_users']} users in {result['play_bots']} voice channels, every user sends `/play` at "
        "the same moment (the commands benchmark's burst: latency from the fake Discord's INTERACTION_CREATE "
        "to the first callback, timed in the fake). With 2 workers the bots are listed alternately by "
        "worker and user i goes to bot i mod "
        f"{result['play_bots']}, so each channel's users reach bots of both workers; a "
        "`/play` whose channel is (or gets) served by the other worker's bot is **forwarded** through "
        "`fleet_requests` and answered there. One cold burst (no bot in voice yet: joins race) and "
        f"{result['play_warm_rounds']} warm ones (every channel has its bot) per run; medians of "
        f"{result['play_runs']} runs per side, the sides alternating. CPU is the workers' sum over the burst "
        "(their idle work meanwhile included) per `/play`.",
        "",
        "| workers | burst | p50 (ms) | p95 (ms) | forwarded | forwarded p50 / p95 (ms) "
        "| answered where received p50 / p95 (ms) | workers' CPU per /play (ms) | errors, not claimed "
        "| runs ok / failed |",
        "|---:|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    for row in summary["rows"]:
        share = row["forwarded_share"]
        lines.append(
            f"| {row['workers']} | {row['kind']} | {ms(row['p50_ms'], 1)} | {ms(row['p95_ms'], 1)} "
            f"| {'-' if share is None else f'{share * 100:.0f}%'} "
            f"| {ms(row['forwarded_p50_ms'], 1)} / {ms(row['forwarded_p95_ms'], 1)} "
            f"| {ms(row['local_p50_ms'], 1)} / {ms(row['local_p95_ms'], 1)} "
            f"| {ms(row['cpu_ms_per_play'], 1)} "
            f"| {row['errors']}, {row['not_claimed']} | {row['runs']} / {row['failed']} |"
        )
    ratios = summary["two_over_one"]
    if any(v is not None for v in ratios.values()):
        lines += [
            "",
            f"2 workers against 1 (same run): cold p50 {_x(ratios.get('cold.p50_ms'))}, cold p95 "
            f"{_x(ratios.get('cold.p95_ms'))}; warm p50 {_x(ratios.get('warm.p50_ms'))}, warm p95 "
            f"{_x(ratios.get('warm.p95_ms'))}; CPU per /play cold {_x(ratios.get('cold.cpu_ms_per_play'))}, "
            f"warm {_x(ratios.get('warm.cpu_ms_per_play'))}. A forwarded `/play` costs three small database "
            "writes (the request, its claim, the receiver's final cancel attempt) and a change-stream "
            "delivery on top of the same command.",
        ]
    return lines


def _takeover_bots(result: dict[str, Any]) -> str:
    done = [s for s in result["takeovers"] if "bots" in s]
    return str(done[0]["bots"]) if done else "-"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
