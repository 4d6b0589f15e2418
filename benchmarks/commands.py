"""Benchmark 3, commands: the `/play` round trip under 50 concurrent users over 10 bots.

The fake Discord, the fake Lavalink and `chorus serve` are three processes. The fake Discord
creates a guild with the bots, one voice channel per bot and the users sitting in those channels
(5 per channel by default). A burst sends `/play <track url>` from every user at once, user i
to bot i mod 10 (the app routes it to the bot in, or joining, the caller's channel); the fake
Discord times each interaction from its INTERACTION_CREATE dispatch to the first callback it
receives, in its own process. The first burst is *cold*: no bot is in voice yet, so each channel's
first /play includes the voice join (VOICE_STATE/VOICE_SERVER_UPDATE, then wavelink's PATCH to
the fake Lavalink) and the others in that channel race with it. The following bursts are *warm*:
every channel already has a bot playing, a /play searches and enqueues.

When pyinstrument is installed (the bench extra) the service runs under
`benchmarks.profiled_serve window`, idle during the measured bursts; afterwards a profiling window
covers a few more warm bursts (not counted) to show where the service's time goes.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import signal
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.fake_lavalink_server import track_uri
from benchmarks.processes import BenchError, cpu_seconds, read_json_when_written, wait_until
from benchmarks.service import (
    ServiceOptions,
    add_checkout,
    drop_database,
    get_json_url,
    new_database_name,
    operation_count,
    post_json,
    remove_checkout,
    seed_bots,
    start_fake_lavalink,
)
from benchmarks.targets import Target, ms, verdict

_log = logging.getLogger(__name__)

NAME = "commands"
TITLE = "Commands: /play round trip"
PLAY_P95_GOAL_MS = 50.0
STARTUP_READY_TIMEOUT = 0.1  # the service's GUILD_READY_TIMEOUT here: it only shortens the startup
INTERACTION_RESPONSE_DEFERRED = 5
PROFILED_BURSTS = 5


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = [s["ms"] for s in samples if s.get("ms") is not None]
    return {
        "count": len(samples),
        "answered": len(times),
        "errors": sum(1 for s in samples if s.get("error")),
        "deferred": sum(1 for s in samples if s.get("type") == INTERACTION_RESPONSE_DEFERRED),
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times) if times else None,
    }


def wait_for_sessions(node_control: str, bots: int, timeout: float) -> int:
    """Wait until every bot's wavelink session is connected to the fake node; returns how many are."""
    connected = 0

    def all_connected() -> bool:
        nonlocal connected
        connected = int(get_json_url(node_control + "/bench/sessions")["connected"])
        return connected >= bots

    try:
        wait_until(all_connected, timeout=timeout, what="wavelink sessions", interval=0.1)
    except BenchError:
        _log.warning("only %d of %d bots connected to the fake Lavalink", connected, bots)
    return connected


def burst(ctx: BenchContext, world: dict[str, Any], bots: list[Any], number: int) -> list[dict[str, Any]]:
    """One /play per user at once, user i to bot i mod B, each a different track; the fake's timings."""
    plays = [{"bot": bots[i % len(bots)].client_id, "user": user["id"],
              "query": track_uri(number * 100 + i + 1)} for i, user in enumerate(world["users"])]  # fmt: skip
    answer = post_json(ctx.world.control_url + "/bench/play",
                       {"guild_id": world["guild_id"], "text_channel_id": world["text_channel_id"],
                        "plays": plays, "timeout": 10.0}, timeout=60)  # fmt: skip
    samples: list[dict[str, Any]] = answer["results"]
    return samples


def _profile_warm(ctx: BenchContext, service: Any, world: dict[str, Any], bots: list[Any], first: int,
                  out: Path) -> dict[str, Any]:  # fmt: skip
    """PROFILED_BURSTS more warm bursts inside one pyinstrument window of the service."""
    time.sleep(0.5)
    os.kill(service.child.pid, signal.SIGUSR1)
    samples: list[dict[str, Any]] = []
    for number in range(first, first + PROFILED_BURSTS):
        samples += burst(ctx, world, bots, number)
        time.sleep(0.1)
    os.kill(service.child.pid, signal.SIGUSR2)
    path = out.with_name(f"{out.name}.1")
    document = read_json_when_written(path, what="the /play profile", timeout=60, interval=0.1,
                                      watch=[service.child])  # fmt: skip
    document["play"] = summarize(samples)
    return document


def _fakes_cpu(ctx: BenchContext, node: Any) -> dict[str, float]:
    """CPU seconds so far of the fake Discord and the fake Lavalink: a burst's latency counts
    their work too (they share the 2 cores with the service)."""
    return {"discord": cpu_seconds(ctx.world.child.pid), "lavalink": cpu_seconds(node.child.pid)}


def _kind_of(text: str) -> str:
    if "Now playing" in text:
        return "now playing"
    if "to the queue" in text:
        return "added to the queue"
    return text


def _database_reads(url: str) -> int:
    """The database's count of queries (finds) so far, from `serverStatus`."""
    return operation_count(url, "query")


def _measure(ctx: BenchContext, code: Path | None, label: str, *, profile: bool) -> dict[str, Any]:
    """One service of the `code` checkout (None: this tree) in a fresh guild and database: the cold
    burst, the warm ones, and (with `profile`) a profiling window over more warm bursts."""
    config = ctx.config
    bots = ctx.world.bots[-config.play_bots :]
    per_channel = max(1, config.play_users // len(bots))
    profiled = profile and importlib.util.find_spec("pyinstrument") is not None
    tracks = (config.play_warm_rounds + 1 + PROFILED_BURSTS) * 100
    node = start_fake_lavalink(ctx.children, ctx.work_dir, tracks=tracks)
    ctx.record_command("fake Lavalink", node.command)
    database = new_database_name("commands")
    try:
        world = post_json(ctx.world.control_url + "/bench/voice-guild",
                          {"bots": [b.client_id for b in bots], "channels": len(bots),
                           "users_per_channel": per_channel}, timeout=30)  # fmt: skip
        seed_bots(ctx.database_url, database, ctx.key, bots)
        out = ctx.work_dir / f"{database}.profile.json"
        options = ServiceOptions(
            guild_ready_timeout=STARTUP_READY_TIMEOUT,
            lavalink_nodes=node.lavalink_nodes,
            profile="window" if profiled else None,
            profile_out=out if profiled else None,
            code_dir=code,
        )
        profile_document: dict[str, Any] | None = None
        service = ctx.start_chorus(database, options, shown_as=f"commands: chorus serve ({label})")
        try:
            service.wait_http(timeout=60)
            service.wait_ready(len(bots), timeout=60)
            sessions = wait_for_sessions(node.control_url, len(bots), timeout=30)
            bursts: list[dict[str, Any]] = []
            for number in range(1 + config.play_warm_rounds):
                kind = "cold" if number == 0 else "warm"
                ctx.wait_for_quiet()
                cpu_before, reads_before = cpu_seconds(service.child.pid), _database_reads(ctx.database_url)
                fakes_before = _fakes_cpu(ctx, node)
                started = time.monotonic()
                samples = burst(ctx, world, bots, number)
                wall = time.monotonic() - started
                summary = summarize(samples)
                ctx.progress(f"  /play burst {number + 1} ({kind}, {label}): p50 {ms(summary['p50_ms'])} ms, "
                             f"p95 {ms(summary['p95_ms'])} ms, {summary['errors']} error(s)")  # fmt: skip
                bursts.append({"kind": kind, "wall_s": round(wall, 3), "summary": summary,
                               "service_cpu_s": round(cpu_seconds(service.child.pid) - cpu_before, 3),
                               "db_reads": _database_reads(ctx.database_url) - reads_before,
                               "fakes_cpu_s": {name: round(after - fakes_before[name], 3)
                                               for name, after in _fakes_cpu(ctx, node).items()},
                               "samples": samples})  # fmt: skip
                time.sleep(0.3)  # let the last callbacks' followups (now-playing messages) pass
            if profiled:
                ctx.progress(f"  profiling {PROFILED_BURSTS} more warm bursts ({label})")
                profile_document = _profile_warm(ctx, service, world, bots, len(bursts), out)
        finally:
            exit_code = ctx.children.stop(service.child)
        if exit_code not in (0, None):
            _log.warning("chorus serve exited with %s:\n%s", exit_code, service.child.tail())
    finally:
        ctx.children.stop(node.child)
        drop_database(ctx.database_url, database)
    return {"users": len(world["users"]), "users_per_channel": per_channel, "sessions": sessions,
            "bursts": bursts, "profile": profile_document}  # fmt: skip


def _rep_summary(rep: dict[str, Any]) -> dict[str, Any]:
    """One service's numbers: its cold burst, its warm bursts pooled, CPU and reads per /play."""
    cold = [s for b in rep["bursts"] if b["kind"] == "cold" for s in b["samples"]]
    warm_bursts = [b for b in rep["bursts"] if b["kind"] == "warm"]
    warm = [s for b in warm_bursts for s in b["samples"]]
    cold_bursts = [b for b in rep["bursts"] if b["kind"] == "cold"]
    return {
        "cold": summarize(cold),
        "warm": summarize(warm),
        "cold_cpu_ms": sum(b["service_cpu_s"] for b in cold_bursts) * 1000,
        "warm_cpu_ms_per_play": sum(b["service_cpu_s"] for b in warm_bursts) * 1000 / max(1, len(warm)),
        "cold_db_reads": sum(b["db_reads"] for b in cold_bursts),
        "warm_db_reads_per_burst": statistics.mean(b["db_reads"] for b in warm_bursts) if warm_bursts else 0,
    }


COMPARED = (  # (key, label): medians over the runs, this tree against the baseline
    ("cold.p50_ms", "cold p50 (ms)"),
    ("cold.p95_ms", "cold p95 (ms)"),
    ("warm.p50_ms", "warm p50 (ms)"),
    ("warm.p95_ms", "warm p95 (ms)"),
    ("cold_cpu_ms", "service CPU, cold burst (ms)"),
    ("warm_cpu_ms_per_play", "service CPU per warm /play (ms)"),
    ("cold_db_reads", "database reads, cold burst"),
    ("warm_db_reads_per_burst", "database reads per warm burst"),
)


def _value(summary: dict[str, Any], key: str) -> float | None:
    value: Any = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _medians(reps: list[dict[str, Any]]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for key, _ in COMPARED:
        values = [v for r in reps if (v := _value(r, key)) is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def run(ctx: BenchContext) -> dict[str, Any]:
    config = ctx.config
    baseline = add_checkout(config.play_baseline, ctx.work_dir / "commands-baseline", label="commands",
                            progress=ctx.progress)  # fmt: skip
    variants: list[tuple[Path | None, str]] = [(None, "this tree")]
    if baseline is not None:
        variants.append((baseline, f"baseline {config.play_baseline}"))
    runs = max(1, config.runs)
    reps: dict[str, list[dict[str, Any]]] = {label: [] for _, label in variants}
    try:
        # Alternating, so that a change in the machine's load lands on both alike.
        for number in range(runs):
            for code, label in variants:
                reps[label].append(_measure(ctx, code, label, profile=number == runs - 1))
    finally:
        if baseline is not None:
            remove_checkout(baseline)
    ours = reps["this tree"]
    bursts = [dict(b, run=n + 1) for n, rep in enumerate(ours) for b in rep["bursts"]]
    cold = [s for b in bursts if b["kind"] == "cold" for s in b["samples"]]
    warm = [s for b in bursts if b["kind"] == "warm" for s in b["samples"]]
    texts = Counter(_kind_of(s.get("text") or s.get("error") or "") for s in cold + warm)
    comparison: list[dict[str, Any]] = []
    for _, label in variants:
        summaries = [_rep_summary(rep) for rep in reps[label]]
        comparison.append({"label": label, "runs": summaries, "median": _medians(summaries),
                           "profile": reps[label][-1]["profile"]})  # fmt: skip
    return {
        "bots": min(config.play_bots, len(ctx.world.bots)),
        "users": ours[0]["users"],
        "users_per_channel": ours[0]["users_per_channel"],
        "warm_rounds": config.play_warm_rounds,
        "runs": runs,
        "baseline_ref": config.play_baseline if baseline is not None else None,
        "lavalink_sessions": min(rep["sessions"] for rep in ours),
        "service_guild_ready_timeout": STARTUP_READY_TIMEOUT,
        "cold": summarize(cold),
        "warm": summarize(warm),
        "all": summarize(cold + warm),
        "bursts": bursts,
        "responses": [{"text": text, "count": count} for text, count in texts.most_common(8)],
        "profile": ours[-1]["profile"],
        "comparison": comparison,
    }


def targets(result: dict[str, Any]) -> list[Target]:
    warm, cold = result["warm"], result["cold"]
    note = f"{result['users']} concurrent users over {result['bots']} bots, fake Lavalink"
    found: list[Target] = []
    for label, summary in (("warm (already playing)", warm), ("cold (includes the voice join)", cold)):
        p95 = summary["p95_ms"]
        ok = None if p95 is None else p95 < PLAY_P95_GOAL_MS and summary["errors"] == 0
        found.append(Target(goal=f"/play p95 < {PLAY_P95_GOAL_MS:g} ms, {label}",
                            measured=f"{ms(p95)} ms ({summary['errors']} errors)", verdict=verdict(ok),
                            note=note))  # fmt: skip
    return found


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['users']} users in {result['bots']} voice channels ({result['users_per_channel']} per "
        f"channel), {result['bots']} bots, all in one guild; every burst sends one `/play <url>` per user "
        f"at once. Latency is INTERACTION_CREATE dispatch → first callback, measured inside the fake "
        f"Discord process. One cold burst (no bot in voice: includes the joins), then "
        f"{result['warm_rounds']} warm bursts (every channel has a bot playing), on "
        f"{result.get('runs', 1)} fresh service(s) (a new guild and database each); the tables pool them. "
        f"{result['lavalink_sessions']} of {result['bots']} bots had a session on the fake Lavalink.",
        *_comparison(result),
        "",
        "| Burst | /play | answered | errors | deferred (type 5) | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("cold", "cold"), ("warm", "warm"), ("all", "all")):
        s = result[key]
        counts = f"| {label} | {s['count']} | {s['answered']} | {s['errors']} | {s['deferred']} |"
        times = f" {ms(s['p50_ms'])} | {ms(s['p95_ms'])} | {ms(s['p99_ms'])} | {ms(s['max_ms'])} |"
        lines.append(counts + times)
    lines += [
        "",
        "| run | # | kind | wall s | service CPU s | fake Discord CPU s | fake Lavalink CPU s "
        "| database reads | p50 ms | p95 ms | p99 ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    numbers: Counter[int] = Counter()
    for burst in result["bursts"]:
        s = burst["summary"]
        run = burst.get("run", 1)
        numbers[run] += 1
        reads = burst.get("db_reads", "")
        fakes = burst.get("fakes_cpu_s") or {}
        fake_cells = " | ".join(f"{fakes[k]:.3f}" if k in fakes else "-" for k in ("discord", "lavalink"))
        lines.append(f"| {run} | {numbers[run]} | {burst['kind']} | {burst['wall_s']:.2f} | "
                     f"{burst['service_cpu_s']:.3f} | {fake_cells} | {reads} | {ms(s['p50_ms'])} | "
                     f"{ms(s['p95_ms'])} | {ms(s['p99_ms'])} |")  # fmt: skip
    lines += ["", *_analysis(result)]
    lines += ["", "Answers (first callback's text):", ""]
    lines += [f"- {r['count']} x {r['text'][:100] or '(no text)'}" for r in result["responses"]]
    profile = result.get("profile")
    if profile:
        play = profile["play"]
        head = f"Profile of the service over {PROFILED_BURSTS} more warm bursts ({play['count']} /play, "
        head += f"p95 {ms(play['p95_ms'])} ms under the profiler; window {profile['duration']:.2f} s wall, "
        head += f"{profile.get('cpu', 0):.2f} s CPU):"
        lines += ["", head, ""]
        lines += _own_time_table(profile, "by_package", "own time in")
        lines += [""]
        lines += _own_time_table(profile, "by_function", "own time in function")
    baseline = next((row for row in result.get("comparison", [])[1:] if row.get("profile")), None)
    if baseline is not None:
        other = baseline["profile"]
        play = other["play"]
        lines += ["", f"The same window on the {baseline['label']} ({play['count']} /play, p95 "
                  f"{ms(play['p95_ms'])} ms under the profiler; window {other['duration']:.2f} s wall, "
                  f"{other.get('cpu', 0):.2f} s CPU):", ""]  # fmt: skip
        lines += _own_time_table(other, "by_package", "own time in")
        lines += [""]
        lines += _own_time_table(other, "by_function", "own time in function")
    return "\n".join(lines)


def _comparison(result: dict[str, Any]) -> list[str]:
    """This tree against the baseline measured in the same run: medians over the runs, and ratios."""
    rows = result.get("comparison") or []
    if len(rows) < 2:
        return []
    ours, baseline = rows[0], rows[1]
    lines = [
        "",
        f"**This tree against {baseline['label']}**, measured in the same run on the same machine, "
        f"alternating ({result.get('runs', 1)} services each): medians over the services of each "
        "one's own percentiles (its cold burst; its warm bursts pooled). Read the ratios: the absolute "
        "numbers move with the machine's load.",
        "",
        f"| | this tree | {baseline['label']} | ratio |",
        "|---|---:|---:|---:|",
    ]
    for key, label in COMPARED:
        mine, theirs = ours["median"].get(key), baseline["median"].get(key)
        ratio = f"{mine / theirs:.2f}x" if mine is not None and theirs else "n/a"
        lines.append(f"| {label} | {_number(mine)} | {_number(theirs)} | {ratio} |")
    return lines


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 100 or float(value).is_integer() else f"{value:.2f}"


def _analysis(result: dict[str, Any]) -> list[str]:
    """What the numbers say, from the numbers."""
    warm = [b for b in result["bursts"] if b["kind"] == "warm"]
    cold = [b for b in result["bursts"] if b["kind"] == "cold"]
    notes: list[str] = []
    if warm:
        cpu = statistics.median(b["service_cpu_s"] for b in warm)
        wall = statistics.median(b["wall_s"] for b in warm)
        per_play = cpu / max(1, result["users"]) * 1000
        notes.append(
            f"- Warm: the service used a median {cpu * 1000:.0f} ms of CPU per burst of {result['users']} "
            f"(**{per_play:.1f} ms per /play**: parse the interaction, route it, `loadtracks` on the node, "
            f"enqueue, POST the callback), and a burst took {wall * 1000:.0f} ms from the harness's "
            "request to the fake's last answer. The service runs every interaction on one event loop, "
            "so those of a burst are served one after the other and the last answers wait for all the "
            "others: the p95 is close to the whole burst's duration; it is queueing, not the cost of one "
            "/play, and it grows with the burst size. The fake Discord (another process on the same 2 "
            f"cores) also needs CPU to send {result['users']} interactions and receive their callbacks, "
            "and so does the fake Lavalink."
        )
    with_fakes = [b for b in warm if b.get("fakes_cpu_s")]
    if with_fakes:
        discord = statistics.median(b["fakes_cpu_s"]["discord"] for b in with_fakes) * 1000
        lavalink = statistics.median(b["fakes_cpu_s"]["lavalink"] for b in with_fakes) * 1000
        service = statistics.median(b["service_cpu_s"] for b in with_fakes) * 1000
        wall = statistics.median(b["wall_s"] for b in with_fakes) * 1000
        notes.append(
            f"- Per warm burst (medians): service {service:.0f} ms of CPU, fake Discord {discord:.0f} ms, "
            f"fake Lavalink {lavalink:.0f} ms, {service + discord + lavalink:.0f} ms in all on 2 cores, "
            f"against {wall:.0f} ms of wall time. What the fakes spend is part of every latency here "
            "(the fake Discord timestamps the callbacks on its own event loop, busy sending the other "
            "interactions), and would not be on Discord's side in production."
        )
    if len(warm) > 1:
        p95s = sorted(b["summary"]["p95_ms"] for b in warm if b["summary"]["p95_ms"] is not None)
        slowest = max(warm, key=lambda b: b["summary"]["p95_ms"] or 0.0)
        notes.append(
            f"- Warm bursts differ: their own p95s range from {p95s[0]:.0f} to {p95s[-1]:.0f} ms "
            f"(median {statistics.median(p95s):.0f} ms); the slowest took {slowest['wall_s'] * 1000:.0f} ms "
            f"with {slowest['service_cpu_s'] * 1000:.0f} ms of service CPU. The pooled warm p95 is that of "
            "the slow bursts. A burst is slow when something else holds the service's one event loop "
            "(a full pass of the garbage collector took about 100 ms before `chorus serve` froze its "
            "start-up objects: the baseline's slow bursts, about one per service) or other processes "
            "take the CPU; the harness does not separate them."
        )
    if cold and warm:
        cold_cpu = statistics.median(b["service_cpu_s"] for b in cold)
        notes.append(
            f"- Cold: {cold_cpu * 1000:.0f} ms of service CPU for the first burst (median). Each "
            "channel's first /play also makes a bot join voice (op 4 → VOICE_STATE_UPDATE + "
            "VOICE_SERVER_UPDATE → wavelink's PATCH of the player on the node) while the channel's other "
            "users wait on that join."
        )
    profile = result.get("profile")
    if profile and profile.get("by_package"):
        duration = float(profile.get("duration") or 0) or 1.0
        busy = [r for r in profile["by_package"] if r["name"] != "asyncio"][:4]
        shares = ", ".join(f"`{r['name']}` {r['seconds'] / duration * 100:.0f}%" for r in busy)
        notes.append(
            f"- Profile (below): outside the idle event loop (`asyncio`), the time goes to {shares} of "
            "the window: the HTTP clients (aiohttp for the callbacks to Discord and wavelink's REST "
            "calls to the node, yarl and urllib building and quoting their URLs) and discord.py's "
            "parsing of each interaction, rather than Chorus's own code (`app/...`)."
        )
    return notes


def _own_time_table(document: dict[str, Any], key: str, header: str, limit: int = 10) -> list[str]:
    duration = float(document.get("duration") or 0) or 1.0
    lines = [f"| {header} | s | share of the window |", "|---|---:|---:|"]
    for row in document.get(key, [])[:limit]:
        lines.append(f"| `{row['name']}` | {row['seconds']:.3f} | {row['seconds'] / duration * 100:.1f}% |")
    return lines
