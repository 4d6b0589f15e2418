"""The benchmark harness end to end in a tiny configuration: it runs, stops every process it
started, and writes the report files (to a temporary directory, never to docs/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.processes import REPO

TINY = [
    "--sizes", "1,2",
    "--baseline-sizes", "1",
    "--runs", "1",
    "--settle", "0.2",
    "--ready-timeouts", "0.1",
    "--http-bots", "2",
    "--http-duration", "1",
    "--http-saturate-duration", "0.5",
    "--http-connections", "4",
    "--play-bots", "2",
    "--play-users", "4",
    "--play-warm-rounds", "1",
    "--play-baseline", "none",  # no git checkout of another ref in a unit test
    "--reload-inserts", "2",
    "--metrics-bots", "2",
    "--metrics-scrapes", "3",
    "--large-sizes", "2,3",
    "--large-idle", "0.5",
    "--only", "fleet,http,commands,hot_reload,metrics,large_fleet",
    "--no-chart",
    "--quiet-wait", "0",
]  # fmt: skip


# Several workers: 4 bots over 1 and 2 workers, a takeover with a short LEASE_TTL, and /play bursts
# of 8 users over 4 bots (2 per voice channel, so with 2 workers each channel's users reach both).
TINY_WORKERS = [
    "--runs", "1",
    "--settle", "0.2",
    "--workers-bots", "4",
    "--takeover-bots", "4",
    "--takeover-runs", "1",
    "--workers-lease-ttl", "3",
    "--play-bots", "4",
    "--play-users", "8",
    "--play-warm-rounds", "1",
    "--workers-play-runs", "1",
    "--only", "workers",
    "--no-chart",
    "--quiet-wait", "0",
]  # fmt: skip


def _run_harness(out: Path, args: list[str]) -> None:
    harness = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--out-dir", str(out), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = harness.communicate(timeout=200)
    finally:
        if harness.poll() is None:  # SIGTERM first: the harness stops its own children
            harness.terminate()
            try:
                harness.wait(timeout=30)
            except subprocess.TimeoutExpired:
                harness.kill()
                harness.wait()
    assert harness.returncode == 0, stderr[-3000:]


@pytest.mark.timeout(240)  # about 20 s on a quiet machine; the bound is for a crowded one
def test_tiny_benchmark_writes_the_report(tmp_path: Path) -> None:
    docs_before = {p.name: p.stat().st_mtime_ns for p in (REPO / "docs").glob("performance*")}
    out = tmp_path / "out"
    _run_harness(out, TINY)

    data = json.loads((out / "performance.json").read_text())
    fleet = data["results"]["fleet"]["summary"]
    rows = fleet["rows"]["grt=0.1"]
    assert [r["bots"] for r in rows] == [1, 2]
    assert all(r["ready_s"] > 0 and r["rss_idle"] > 0 for r in rows)
    assert fleet["baseline_rows"][0]["rss_total"] > 0
    http = data["results"]["http"]["summary"]
    assert {r["path"] for r in http} == {"/health", "/bots"}
    assert all(r["rate_errors"] == 0 and r["sat_errors"] == 0 and r["sat_throughput"] > 0 for r in http)
    commands = data["results"]["commands"]
    assert commands["cold"]["count"] == 4 and commands["warm"]["count"] == 4
    assert commands["all"]["errors"] == 0 and commands["all"]["p95_ms"] > 0
    reload = data["results"]["hot_reload"]["variants"]["grt=0.1"]["summary"]
    assert reload["inserts"] == 2 and reload["ready_p50_ms"] > 0
    metrics = data["results"]["metrics"]["summary"]
    assert metrics["bots"] == 2 and metrics["scrapes"] == 3 and metrics["p50_ms"] > 0 and metrics["bytes"] > 0
    large = data["results"]["large_fleet"]["rows"]
    assert [r["bots"] for r in large] == [2, 3]
    assert all(r["threads"] > r["bots"] and r["endpoint"]["page_ms"]["p50"] > 0 for r in large)
    assert not any(t["verdict"] == "pending" for t in data["targets"])

    report = (out / "PERFORMANCE.md").read_text()
    for heading in ("## Targets", "## 1. Fleet size", "## 2. HTTP", "## 3. Commands", "## 4. Hot reload",
                    "Monitoring", "A large fleet on one worker", "## Command lines"):  # fmt: skip
        assert heading in report
    assert "pending" not in report.lower()
    assert "<generated>" in report  # the encryption key is masked in the command lines
    assert not (out / "performance.png").exists()
    docs_after = {p.name: p.stat().st_mtime_ns for p in (REPO / "docs").glob("performance*")}
    assert docs_after == docs_before


@pytest.mark.timeout(240)  # about 30 s on a quiet machine
def test_tiny_workers_benchmark_reports_ready_takeover_and_bursts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run_harness(out, TINY_WORKERS)

    result = json.loads((out / "performance.json").read_text())["results"]["workers"]
    summary = result["summary"]
    assert [(r["workers"], r["samples"], r["failed"]) for r in summary["rows"]] == [(1, 1, 0), (2, 1, 0)]
    assert all(r["ready_s"] > 0 and r["rss_idle"] > 0 for r in summary["rows"])
    assert summary["two_over_one"]["ready"] is not None
    assert summary["takeover_failed"] == 0 and summary["takeover_ready_median_s"] > 0

    rows = {(r["workers"], r["kind"]): r for r in result["burst_summary"]["rows"]}
    assert set(rows) == {(1, "cold"), (1, "warm"), (2, "cold"), (2, "warm")}
    for row in rows.values():
        assert row["plays"] == 8 and row["errors"] == 0 and row["not_claimed"] == 0
        assert row["p50_ms"] > 0 and row["p95_ms"] > 0
    # One worker never forwards; over two, each channel's two users reach bots of both workers, so
    # every warm burst forwards exactly the /play that reached the worker without the channel's bot.
    assert rows[1, "cold"]["forwarded"] == rows[1, "warm"]["forwarded"] == 0
    assert rows[2, "warm"]["forwarded"] == 4 and rows[2, "warm"]["forwarded_p95_ms"] > 0
    ratios = result["burst_summary"]["two_over_one"]
    assert ratios["warm.p50_ms"] is not None and ratios["cold.p95_ms"] is not None

    report = (out / "PERFORMANCE.md").read_text()
    assert "A burst of 8 `/play` over 2 workers against 1" in report
    assert "a forwarded /play answered within Discord's 3 s" in report


@pytest.mark.timeout(480)  # about 60 s on a quiet machine (18 starts of 1-2 bots); crowded: longer
def test_tiny_start_stop_benchmark(tmp_path: Path) -> None:
    """The start/stop section on the three codes (this tree and its two baseline checkouts)."""
    out = tmp_path / "out"
    tiny = ["--only", "start_stop", "--start-stop-sizes", "1,2", "--start-stop-runs", "1", "--no-profile",
            "--no-chart", "--quiet-wait", "0"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--out-dir", str(out), *tiny],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=460,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "performance.json").read_text())["results"]["start_stop"]
    rows = result["rows"]
    baselines = (("before", result["baseline_ref"]), ("lease fleet before", result["lease_baseline_ref"]))
    codes = [code for code, ref in baselines if ref] + ["this tree"]  # a shallow clone: no baseline
    assert {(r["code"], r["bots"]) for r in rows} == {(code, n) for code in codes for n in (1, 2)}
    for row in rows:
        assert row["cpu_ready_s"] > 0 and row["db_ops"] > 0 and row["stops_killed"] == 0
        assert row["closes"]["frame"] == row["bots"] and row["exit_codes"] == [0]
    assert "Per additional bot" in (out / "PERFORMANCE.md").read_text()


@pytest.mark.timeout(240)  # about 30 s on a quiet machine; the bound is for a crowded one
def test_tiny_periodic_benchmark_says_where_the_idle_writes_go(tmp_path: Path) -> None:
    """The idle-fleet windows count the service's own database commands by collection, so the
    report can tell the worker's liveness heartbeat from writes that would grow with the bots; and
    the census run says what the idle loop ran."""
    out = tmp_path / "out"
    tiny = ["--only", "periodic", "--periodic-bots", "3", "--periodic-window", "4", "--runs", "1",
            "--periodic-baseline", "none", "--snapshot-players", "2", "--snapshot-sweeps", "2",
            "--periodic-settle", "0", "--periodic-quiet", "0", "--periodic-census", "3", "--no-profile",
            "--no-chart", "--quiet-wait", "0"]  # fmt: skip
    _run_harness(out, tiny)
    result = json.loads((out / "performance.json").read_text())["results"]["periodic"]
    idle = [row for row in result["idle"] if row["code"] == "scheduler"]
    assert len(idle) == 1 and idle[0]["bots"] == 3
    writes = idle[0]["writes_by_collection"]
    # 4 s hold at least one heartbeat (every 3 s). (Not "nothing else": a bot's gateway latency
    # is published when it moves, which a busy machine can make it do.)
    assert writes.get("update workers", 0) > 0, writes
    assert idle[0]["commands_per_s"] > 0
    # ... and the documents those commands wrote (a bulk write is one command of many).
    assert idle[0]["statements_by_collection"].get("update workers", 0) > 0, idle[0]
    report = (out / "PERFORMANCE.md").read_text()
    assert "documents it wrote besides its heartbeat" in report
    assert "update workers" in report and "the worker's heartbeat" in report
    # The census run names what its loop ran: the worker's own tasks among them (its heartbeat
    # beats every 3 s, so 3 s hold at least one run of it or of the balancer's wait).
    census = result["census"]["windows"][0]["census"]
    names = [entry["what"] for entry in census["top"]]
    assert census["callbacks_per_s"] > 0 and any(name.startswith("task ") for name in names), names
    assert "Where an idle worker's loop goes" in report
    # ... beside discord.py alone, censused the same way (idle for 3 s, it may run nothing at all).
    assert "callbacks_per_s" in result["bare_census"]["windows"][0]["census"]
    assert "The same census of 3 bare discord.py clients" in report
