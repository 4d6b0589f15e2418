"""Benchmark: a large fleet on one worker: `/bots` pages, threads, context switches.

For each N (100 and 1,000 by default) `chorus serve` runs N ready bots (every bot in one guild).
After a settle time the process is watched for an idle window: threads (discord.py's heartbeat
ran one per gateway connection; app/bots/heartbeat.py runs them on the event loop), resident
memory, context switches of every thread (from /proc/PID/task/*/status) and CPU. Then `/bots`
is requested over one keep-alive connection, unpaged and as pages of 100 (following each page's
`next`), and the `latencyMs` of the bots is read (the honest heartbeat latency of
app/bots/heartbeat.py: before it, fast servers showed ≈41,000 ms and "Can't keep up" warnings,
counted here from the log).
"""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.processes import cpu_reading, cpu_seconds, foreign_cpu_share, rss_bytes
from benchmarks.service import (
    ChorusProcess,
    ServiceOptions,
    drop_database,
    new_database_name,
    seed_bots,
)
from benchmarks.targets import MIB, Target, mib, ms, percent, verdict

NAME = "large_fleet"
TITLE = "A large fleet on one worker: /bots pages, threads, context switches"
PAGE = 100
PAGE_GOAL_MS = 10.0


def _tasks(pid: int) -> list[Path]:
    return [path for path in Path(f"/proc/{pid}/task").iterdir() if path.name.isdigit()]


def thread_reading(pid: int) -> dict[str, int]:
    """Threads and context switches (voluntary + not) summed over threads, split into the event
    loop's thread (the main one) and the others: a handful (and, in code before app/bots/heartbeat.py
    ran the heartbeats on the loop, discord.py's heartbeat threads, one per gateway connection)."""
    threads = switches = loop_switches = 0
    for task in _tasks(pid):
        try:
            status = (task / "status").read_text().splitlines()
        except OSError:
            continue  # the thread ended meanwhile
        count = sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)
        threads += 1
        switches += count
        if task.name == str(pid):
            loop_switches += count
    return {"threads": threads, "switches": switches, "other_switches": switches - loop_switches}


class _KeepAlive:
    """One keep-alive HTTP connection to the service: each GET timed from its send to the last
    byte of its body (the connection is opened before the first request is timed)."""

    def __init__(self, service: ChorusProcess) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        self._connection.connect()
        # The request goes out in one write; no Nagle wait on a reply to a small request.
        self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, path: str) -> tuple[float, int, dict[str, Any] | None]:
        """Milliseconds, body size, and the body when it is a 200."""
        start = time.perf_counter()
        self._connection.request("GET", path)
        response = self._connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        return elapsed, len(body), json.loads(body) if response.status == 200 else None

    def close(self) -> None:
        self._connection.close()


def measure_bots_endpoint(
    ctx: BenchContext, service: ChorusProcess, requests: int, *, idle_cpu_share: float
) -> dict[str, Any]:
    """Client-side latency of each form, and the service's CPU per request (its CPU during the
    requests less what it spends idle over the same wall time): the second does not depend on
    how busy the rest of the machine is. Both forms go over one keep-alive connection, as the
    table says (the page walk used to open a connection per page)."""
    pid = service.child.pid

    def cpu_per_request(cpu_before: float, wall_before: float, count: int) -> float:
        spent = cpu_seconds(pid) - cpu_before - idle_cpu_share * (time.monotonic() - wall_before)
        return round(max(0.0, spent) / count * 1000, 3)

    client = _KeepAlive(service)
    try:
        client.get("/health")  # the connection's first request is not timed
        machine_before = cpu_reading(ctx.children)
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        unpaged: list[float] = []
        unpaged_size = 0
        for _ in range(requests):
            elapsed, unpaged_size, _body = client.get("/bots")
            unpaged.append(elapsed)
        unpaged_cpu = cpu_per_request(cpu_before, wall_before, requests)
        # Walk the pages following `next`, starting over after the last one.
        page_times: list[float] = []
        page_size = 0
        after: str | None = None
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        while len(page_times) < requests:
            path = f"/bots?limit={PAGE}" + (f"&after={after}" if after else "")
            elapsed, page_size, body = client.get(path)
            page_times.append(elapsed)
            after = body.get("next") if body else None
        page_cpu = cpu_per_request(cpu_before, wall_before, len(page_times))
        others = foreign_cpu_share(machine_before, cpu_reading(ctx.children))
    finally:
        client.close()
    return {
        "unpaged_ms": _stats(unpaged),
        "unpaged_bytes": unpaged_size,
        "unpaged_cpu_ms": unpaged_cpu,
        "page_ms": _stats(page_times),
        "page_bytes": page_size,
        "page_cpu_ms": page_cpu,
        "requests": requests,
        # Other processes' share of the machine while the requests ran: the latency above a
        # request's CPU is mostly the wait for a core when this is high.
        "others_cpu_share": round(others, 4),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
        "max": round(ordered[-1], 3),
    }


def measure(ctx: BenchContext, bots: int) -> dict[str, Any]:
    config = ctx.config
    ctx.wait_for_quiet()
    database = new_database_name(f"large{bots}")
    seed_bots(ctx.database_url, database, ctx.key, ctx.world.bots[:bots])
    service = ctx.start_chorus(
        database, ServiceOptions(guild_ready_timeout=0.1), shown_as="large fleet: chorus serve"
    )
    try:
        spawned = time.monotonic()
        service.wait_http(timeout=60)
        service.wait_ready(bots, timeout=60 + bots / 5)
        ready_s = time.monotonic() - spawned
        cpu_ready = cpu_seconds(service.child.pid)
        time.sleep(max(config.settle, bots / 100))  # the guild records of a large fleet follow READY
        pid = service.child.pid
        before, cpu_before, wall_before = thread_reading(pid), cpu_seconds(pid), time.monotonic()
        time.sleep(config.large_idle)
        after, cpu_after, wall = thread_reading(pid), cpu_seconds(pid), time.monotonic() - wall_before
        rss = rss_bytes(pid)
        listing = service.get_json("/bots", timeout=30) or {"bots": []}
        latencies = [b["latencyMs"] for b in listing["bots"] if isinstance(b.get("latencyMs"), int | float)]
        ctx.progress(f"  {bots} bots: {after['threads']} threads, {rss / MIB:.0f} MiB, "
                     f"{(after['switches'] - before['switches']) / wall:.0f} context switches/s")  # fmt: skip
        idle_share = (cpu_after - cpu_before) / wall
        endpoint = measure_bots_endpoint(ctx, service, config.large_requests, idle_cpu_share=idle_share)
        ctx.progress(f"  /bots unpaged p50 {endpoint['unpaged_ms']['p50']} ms, "
                     f"page of {PAGE} p50 {endpoint['page_ms']['p50']} ms; service CPU per request "
                     f"{endpoint['unpaged_cpu_ms']} / {endpoint['page_cpu_ms']} ms")  # fmt: skip
        log = service.child.log_path.read_text(errors="replace")
        return {
            "bots": bots,
            "ready_s": round(ready_s, 2),
            "cpu_to_ready_s": round(cpu_ready, 2),
            "rss_bytes": rss,
            "threads": after["threads"],
            "switches_per_s": round((after["switches"] - before["switches"]) / wall, 1),
            "other_switches_per_s": round((after["other_switches"] - before["other_switches"]) / wall, 1),
            "idle_cpu_share": round((cpu_after - cpu_before) / wall, 4),
            "idle_window_s": round(wall, 1),
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "latency_ms_max": max(latencies) if latencies else None,
            "latency_over_10s": sum(1 for value in latencies if value > 10_000),
            "behind_warnings": log.count("Can't keep up"),
            "endpoint": endpoint,
        }
    finally:
        ctx.children.stop(service.child, timeout=60)
        drop_database(ctx.database_url, database)


def run(ctx: BenchContext) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for bots in ctx.config.large_sizes:
        ctx.progress(f"large fleet: {bots} bots")
        samples = [measure(ctx, bots) for _ in range(ctx.config.large_runs)]
        rows.append(_median_row(samples))
    return {"rows": rows, "runs": ctx.config.large_runs, "idle_s": ctx.config.large_idle,
            "requests": ctx.config.large_requests}  # fmt: skip


def _median_row(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the runs (the endpoint's too)."""
    row: dict[str, Any] = {"runs": len(samples)}
    for key, value in samples[0].items():
        if key == "endpoint":
            row[key] = {
                name: {stat: statistics.median(s[key][name][stat] for s in samples) for stat in value[name]}
                if isinstance(value[name], dict)
                else statistics.median(s[key][name] for s in samples)
                for name in value
            }
        elif isinstance(value, int | float):
            values = [s[key] for s in samples if isinstance(s[key], int | float)]
            row[key] = statistics.median(values) if values else None
        else:
            row[key] = value
    return row


def _share(value: Any) -> str:
    return percent(float(value)) if isinstance(value, int | float) else "-"


def _largest(result: dict[str, Any]) -> dict[str, Any] | None:
    rows: list[dict[str, Any]] = result.get("rows", [])
    return max(rows, key=lambda each: int(each["bots"])) if rows else None


def targets(result: dict[str, Any]) -> list[Target]:
    row = _largest(result)
    goal = f"/bots page of {PAGE} < {PAGE_GOAL_MS:g} ms median at 1,000 bots"
    note = "sequential requests over one keep-alive connection, client-side"
    if row is None:
        return [Target(goal=goal, measured="-", verdict=verdict(None), note=note)]
    page = float(row["endpoint"]["page_ms"]["p50"])
    cpu = row["endpoint"].get("page_cpu_ms")
    service = f" (service CPU {cpu:.2f} ms/request)" if isinstance(cpu, int | float) else ""
    others = row["endpoint"].get("others_cpu_share")
    if isinstance(others, int | float):
        note += f"; others used {percent(float(others))} of the machine meanwhile"
    return [
        Target(
            goal=goal,
            measured=f"{page:.2f} ms at {row['bots']} bots{service}",
            verdict=verdict(None if row["bots"] < 1000 else page < PAGE_GOAL_MS),
            note=note,
        )
    ]


def render(result: dict[str, Any]) -> str:
    rows = result.get("rows", [])
    lines = [
        f"Each N: `chorus serve` with N ready bots (`GUILD_READY_TIMEOUT=0.1`), a settle time (N/100 s, "
        f"at least 3 s), then {result['idle_s']:g} s idle, read from /proc (context switches summed over "
        "every thread); then "
        f"{result['requests']} sequential `GET /bots` over one keep-alive connection, unpaged and as pages "
        f"of {PAGE} following `next`. Medians of {result['runs']} run(s).",
        "",
        "| bots | ready (s) | CPU to ready (s) | idle RSS (MiB) | threads "
        "| ctx switches/s | of which not the loop's thread | idle CPU | latencyMs p50 | latencyMs max "
        "| latencyMs > 10 s | 'Can't keep up' lines |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['bots']} | {row['ready_s']:.2f} | {row['cpu_to_ready_s']:.2f} | {mib(row['rss_bytes'])} "
            f"| {row['threads']:.0f} | {row['switches_per_s']:.0f} "
            f"| {row['other_switches_per_s']:.0f} | {percent(row['idle_cpu_share'])} "
            f"| {ms(row['latency_ms_p50'], 1)} | {ms(row['latency_ms_max'], 1)} "
            f"| {row['latency_over_10s']:.0f} | {row['behind_warnings']:.0f} |"
        )
    lines += [
        "",
        "| bots | `/bots` body (B) | p50 (ms) | p95 (ms) | service CPU/request (ms) "
        f"| page of {PAGE} body (B) | p50 (ms) | p95 (ms) | service CPU/request (ms) "
        "| page/unpaged p50 | page/unpaged CPU | others' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        endpoint = row["endpoint"]
        unpaged, page = endpoint["unpaged_ms"], endpoint["page_ms"]
        ratio = page["p50"] / unpaged["p50"] if unpaged["p50"] else None
        cpu_ratio = (
            endpoint["page_cpu_ms"] / endpoint["unpaged_cpu_ms"] if endpoint["unpaged_cpu_ms"] else None
        )
        lines.append(
            f"| {row['bots']} | {endpoint['unpaged_bytes']:.0f} | {ms(unpaged['p50'])} "
            f"| {ms(unpaged['p95'])} | {ms(endpoint['unpaged_cpu_ms'], 3)} | {endpoint['page_bytes']:.0f} "
            f"| {ms(page['p50'])} | {ms(page['p95'])} | {ms(endpoint['page_cpu_ms'], 3)} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {'-' if cpu_ratio is None else f'{cpu_ratio:.2f}x'} "
            f"| {_share(endpoint.get('others_cpu_share'))} |"
        )
    if len(rows) >= 2:
        small, large = min(rows, key=lambda r: r["bots"]), max(rows, key=lambda r: r["bots"])
        extra = large["bots"] - small["bots"]
        if extra > 0:
            lines += [
                "",
                f"Per additional bot from {small['bots']} to {large['bots']}: "
                f"{(large['threads'] - small['threads']) / extra:.2f} threads, "
                f"{(large['rss_bytes'] - small['rss_bytes']) / extra / 1024:.0f} KiB resident, "
                f"{(large['switches_per_s'] - small['switches_per_s']) / extra:.3f} context switches/s "
                f"({(large['other_switches_per_s'] - small['other_switches_per_s']) / extra:.3f} "
                "outside the loop's thread).",
            ]
    lines += [
        "",
        "- No thread per bot: discord.py's heartbeat thread per gateway connection (1,006 threads at "
        '1,000 bots before) is replaced by a timer on the event loop (ARCHITECTURE.md, "Gateway '
        "heartbeats\"), so the thread count stays at the process's own handful whatever N is.",
        "- `latencyMs` is measured from each heartbeat's own send (app/bots/heartbeat.py): a value of "
        "seconds here is the event loop running late under load, not the ≈41,000 ms measurement race "
        "that fast servers used to show.",
        "- The page/unpaged ratios are of the same run; *service CPU/request* is the service's CPU during "
        "the requests less its idle CPU over the same time, which a busy machine does not inflate as much "
        "as the latency. *others' CPU* is the share of the machine other processes used while the requests "
        "ran: each request wakes the client and the service in turn, and on a busy 2-core machine each "
        "wake-up may wait for a core, so the latency above the service's CPU is mostly that wait.",
    ]
    return "\n".join(lines)
