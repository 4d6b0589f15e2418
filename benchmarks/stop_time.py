"""SIGTERM to exit of `chorus serve`, from the outside: a tool to look at one stop closely.

    flock /work/wt/bench.lock .venv/bin/python -m benchmarks.stop_time --bots 200 1000 --runs 3

Starts SecantusDB, the fake Discord and the fake Lavalink, then for each run, N and variant (with
and without LAVALINK_NODES): seeds N bots on a fresh database, starts `chorus serve`
(`GUILD_READY_TIMEOUT=0.1`, `LOG_LEVEL=INFO`), waits until `/health` says every bot is active and
the process is idle (`--idle` more seconds), sends SIGTERM and times the exit. Prints each stop
(seconds, CPU the process used meanwhile, exit code, how the fake Discord saw the gateway
connections end), the service's log lines about the stop, and the medians.

`--hogs K` runs K busy loops during the stop (a loaded machine), `--stall-lavalink` stops the
fake Lavalink (SIGSTOP) before the SIGTERM, `--spy-every S` prints the main thread's stack
(`py-spy dump`, if installed in the virtualenv) every S seconds of the stop, `--env KEY=VALUE`
adds a setting (e.g. `PYTHONPATH=<checkout>` runs another version's `app`, as the benchmarks'
baselines). `benchmarks/start_stop.py` measures the stop at 300 and 1,000 bots in `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.tokens import generate_key
from benchmarks.metrics_scrape import wait_until_idle
from benchmarks.processes import BIN, Child, Children, base_env, cpu_seconds, free_port
from benchmarks.service import (
    ChorusProcess,
    FakeNode,
    FakeWorld,
    drop_database,
    new_database_name,
    post_json,
    seed_bots,
    start_database,
    start_fake_discord,
    start_fake_lavalink,
)

# Log lines about the stop (the per-bot "stopped for a hand-over" lines are counted, not shown).
_STOP_WORDS = ("Shutting down", "Stopping", "drain", "deadline", "abandon", "did not", "not stopped",
               "not handed", "IDENTIFY", "shutdown complete")  # fmt: skip


def _main_thread(dump: str) -> str:
    """The main thread's stack of a `py-spy dump` (1,000 bots have 1,000 keep-alive threads)."""
    blocks = dump.split("\nThread ")
    return "\n".join(b for b in blocks if b.strip() and "MainThread" in b.splitlines()[0])


def _stop_once(
    children: Children, world: FakeWorld, node: FakeNode | None, args: argparse.Namespace, *, n: int,
    database_url: str, key: str, lavalink: bool,
) -> float | None:  # fmt: skip
    label = f"{n} bots, {'Lavalink' if lavalink else 'no Lavalink'}"
    database = new_database_name("stoptime")
    seed_bots(database_url, database, key, world.bots[:n])
    port = free_port()
    env = base_env(MONGODB_URL=database_url, MONGODB_DATABASE=database, TOKEN_ENCRYPTION_KEYS=key,
                   HTTP_PORT=str(port), DISCORD_API_BASE=world.api_base,
                   DISCORD_GATEWAY_URL=world.gateway_url, LOG_LEVEL="INFO", GUILD_READY_TIMEOUT="0.1",
                   LAVALINK_NODES=node.lavalink_nodes if lavalink and node is not None else "")  # fmt: skip
    for extra in args.env:
        name, _, value = extra.partition("=")
        env[name] = value
    child = children.start(f"chorus-{database}", [str(BIN / "chorus"), "serve"], env=env)
    # No command line: this tool reports none.
    service = ChorusProcess(child=child, port=port, command=None)  # type: ignore[arg-type]
    try:
        service.wait_http(timeout=120)
        service.wait_ready(n, timeout=120 + n / 5)
        wait_until_idle(child.pid)
        time.sleep(args.idle)
        stop_s, cpu = _time_the_stop(child, node, args)
        closes = post_json(f"{world.control_url}/bench/closes",
                           {"client_ids": [bot.client_id for bot in world.bots[:n]]}, timeout=30)  # fmt: skip
        shown = "killed" if stop_s is None else f"{stop_s:.2f} s"
        print(f"{label}: SIGTERM to exit {shown} (CPU >= {cpu:.2f} s), exit code {child.process.poll()}, "
              f"gateway connections {json.dumps(closes)}", flush=True)  # fmt: skip
        lines = child.log_path.read_text(errors="replace").splitlines()
        handed = sum(1 for line in lines if "stopped for a hand-over" in line)
        for line in lines:
            if any(word in line for word in _STOP_WORDS) and "stopped for a hand-over" not in line:
                print("    log:", line[:300])
        print(f"    log: {handed} bot(s) stopped for a hand-over", flush=True)
        return stop_s
    finally:
        children.stop(child, timeout=30)
        drop_database(database_url, database)


def _time_the_stop(
    child: Child, node: FakeNode | None, args: argparse.Namespace
) -> tuple[float | None, float]:
    """SIGTERM, then wait for the exit (at most `--cap`). Returns (seconds or None, CPU seconds)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    if args.stall_lavalink and node is not None:
        node.child.process.send_signal(signal.SIGSTOP)
    spy = BIN / "py-spy"
    try:
        cpu_before = cpu_last = cpu_seconds(child.pid)
        started = time.monotonic()
        child.process.send_signal(signal.SIGTERM)
        dumps = 0
        while time.monotonic() - started < args.cap:
            if child.process.poll() is not None:
                return time.monotonic() - started, cpu_last - cpu_before
            if args.spy_every and spy.exists() and time.monotonic() - started >= dumps * args.spy_every:
                dumps += 1
                argv = [str(spy), "dump", "--nonblocking", "--pid", str(child.pid)]
                out = subprocess.run(argv, capture_output=True, text=True, check=False)
                print(f"--- py-spy at {time.monotonic() - started:.1f} s ---\n{_main_thread(out.stdout)}")
            with contextlib.suppress(Exception):  # it may have exited meanwhile
                cpu_last = cpu_seconds(child.pid)
            time.sleep(0.05)
        return None, cpu_last - cpu_before
    finally:
        if args.stall_lavalink and node is not None:
            node.child.process.send_signal(signal.SIGCONT)
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, nargs="+", default=[1000], help="fleet sizes (1000)")
    parser.add_argument("--runs", type=int, default=1, help="stops per size and variant; medians are printed")
    parser.add_argument("--lavalink", choices=("yes", "no", "both"), default="both")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds idle before SIGTERM")
    parser.add_argument("--cap", type=float, default=90.0, help="seconds before a stop counts as killed")
    parser.add_argument("--hogs", type=int, default=0, help="busy loops during the stop (a loaded machine)")
    parser.add_argument("--stall-lavalink", action="store_true", help="SIGSTOP the fake Lavalink first")
    parser.add_argument("--spy-every", type=float, default=0.0, help="py-spy dump period (0: none)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for chorus serve")
    args = parser.parse_args()
    variants = {"yes": [True], "no": [False], "both": [True, False]}[args.lavalink]
    results: dict[str, list[float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="stop-time-") as tmp, Children(Path(tmp)) as children:
        database_url, _ = start_database(children)
        world = start_fake_discord(children, Path(tmp), bots=max(args.bots), guilds=1)
        node = start_fake_lavalink(children, Path(tmp), tracks=1) if True in variants else None
        key = generate_key()
        for _ in range(args.runs):  # interleaved, so a change in the machine's load hits every variant
            for n in args.bots:
                for lavalink in variants:
                    stop_s = _stop_once(children, world, node, args, n=n, database_url=database_url, key=key,
                                        lavalink=lavalink)  # fmt: skip
                    label = f"{n} bots, {'Lavalink' if lavalink else 'no Lavalink'}"
                    results.setdefault(label, []).append(stop_s)
    print(f"SIGTERM to exit, median of {args.runs} (a stop over {args.cap:g} s counts as {args.cap:g} s):")
    for label, values in results.items():
        median = statistics.median(args.cap if value is None else value for value in values)
        samples = ", ".join("killed" if value is None else f"{value:.2f}" for value in values)
        print(f"  {label}: {median:.2f} s ({samples})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
