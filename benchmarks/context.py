"""What every benchmark module receives: the configuration and the running world."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.processes import Children, CommandLine, wait_for_quiet
from benchmarks.service import ChorusProcess, FakeWorld, ServiceOptions, start_chorus

_log = logging.getLogger("benchmarks")
QUIET_THRESHOLD = 0.1


T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """How a BenchConfig field is set from the command line (`--field-name`)."""

    help: str | None
    parse: Callable[[str], Any]  # reads the option's text


def option(default: T, help: str | None = None, *, parse: Callable[[str], T] | None = None) -> T:
    """A BenchConfig field that is also an option of `python -m benchmarks.run`. Without `parse`,
    the text is read by the type of the default (int, float or str)."""
    if parse is not None:
        return field(default=default, metadata={Option: Option(help, parse)})
    if isinstance(default, bool) or not isinstance(default, int | float | str):
        raise TypeError(f"option({default!r}) needs parse=: its type does not read a command line")
    return field(default=default, metadata={Option: Option(help, type(default))})


def parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parse_ready_timeouts(text: str) -> tuple[float | None, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(None if part == "default" else float(part) for part in parts)


def parse_git_ref(text: str) -> str:
    """A git ref to measure in the same run, or "" for none ('none' on the command line)."""
    return "" if text == "none" else text


def baseline_option(ref: str, benchmark: str) -> str:
    """The code before a change, checked out and measured in the same run as this tree."""
    help = f"{benchmark}: git ref measured in the same run for the ratios; 'none' to skip (%(default)s)"
    return option(ref, help, parse=parse_git_ref)


@dataclass(frozen=True)
class BenchConfig:
    """Sizes, repetitions and durations. The defaults are what `make bench` runs."""

    sizes: tuple[int, ...] = option(
        (1, 10, 50, 100, 200), "fleet sizes N (1,10,50,100,200)", parse=parse_ints
    )
    # N processes of ~45 MiB each importing discord.py on 2 cores: 200 is too heavy to repeat.
    baseline_sizes: tuple[int, ...] = option(
        (1, 10, 50, 100), "single-bot process counts (1,10,50,100)", parse=parse_ints
    )
    runs: int = option(3, "repetitions; medians are reported")
    settle: float = option(3.0, "seconds idle before memory is read")
    # GUILD_READY_TIMEOUT of each fleet variant; None is the service's default (2 s). The first is the
    # primary variant: memory per bot and the baseline comparison use it.
    ready_timeouts: tuple[float | None, ...] = option(
        (None, 0.1),
        "GUILD_READY_TIMEOUT of each fleet variant, 'default' for the service's default; the first is "
        "the primary one (default,0.1)",
        parse=parse_ready_timeouts,
    )
    guilds: int = option(1, "guilds every bot is in")
    http_bots: tuple[int, ...] = option((1, 100), "bots during the HTTP loads", parse=parse_ints)
    http_rate: float = option(200.0, "fixed rate, requests/s")
    http_duration: float = option(10.0, "seconds at that rate")
    http_saturate_duration: float = option(5.0)
    http_connections: int = option(16)
    http_paths: tuple[str, ...] = ("/health", "/bots")
    play_bots: int = option(10, "commands: bots (10)")  # bots in the guild, one voice channel each
    # spread evenly over the voice channels
    play_users: int = option(50, "commands: concurrent /play users (50)")
    # bursts after every channel has a bot playing
    play_warm_rounds: int = option(5, "commands: warm bursts after the cold one (5)")
    # commands: the same bursts on this git ref, in the same run ("" for none), `runs` times each
    play_baseline: str = baseline_option("c08997c", "commands")
    reload_inserts: int = option(20, "hot reload: bots inserted per GUILD_READY_TIMEOUT variant (20)")
    # several workers: the fleet spread over `worker_counts` workers
    workers_bots: int = option(2000, "several workers: bots spread over 1 and 2 workers (2000)")
    worker_counts: tuple[int, ...] = option(
        (1, 2), "several workers: how many workers to compare (1,2)", parse=parse_ints
    )
    takeover_bots: int = option(2000, "takeover: bots over 2 workers, one SIGKILLed (2000)")
    takeover_runs: int = option(3, "takeover: runs (3)")
    workers_lease_ttl: float | None = option(
        None, "LEASE_TTL of the workers (default: the service's, 15 s)", parse=float
    )
    workers_ready_timeout: float | None = option(
        None, "GUILD_READY_TIMEOUT of the workers (default: the service's, 2 s)", parse=float
    )
    # the commands burst (play_*) over 1 and over 2 workers, runs per side
    workers_play_runs: int = option(
        3, "several workers: /play bursts (--play-*) over 1 and 2 workers, runs per side (3)"
    )
    # monitoring: the goal is a cheap /metrics at 1,000 bots
    metrics_bots: int = option(1000, "monitoring: bots connected while /metrics is scraped (1000)")
    metrics_scrapes: int = option(50, "monitoring: /metrics requests timed (50)")
    # periodic work: the idle fleet (the goal is stated at 1,000)
    periodic_bots: int = option(1000, "periodic: bots of the idle fleet (1000)")
    # seconds of each window (`runs` of them) the idle fleet is read over
    periodic_window: float = option(60.0, "periodic: seconds per idle fleet window (--runs of them) (60)")
    periodic_settle: float = option(
        80.0, "periodic: seconds after ready before the windows, for the worker's heap settle (80)"
    )
    periodic_quiet: float = option(
        70.0,
        "periodic: seconds with no write but the heartbeat before the windows, after the settle (70)",
    )
    # periodic: the code before the worker scheduler (per-bot idle/snapshot loops and per-node
    # watchdogs), measured in the same run for the ratios; "" for none
    periodic_baseline: str = baseline_option("16e8f9e", "periodic")
    periodic_census: float = option(
        60.0,
        "periodic: seconds of one more idle fleet on the stdlib loop, every callback timed; 0: none (60)",
    )
    snapshot_players: int = option(1000, "periodic: players of 50 queued tracks, snapshot volume (1000)")
    # sweeps of 10 simulated seconds after the first
    snapshot_sweeps: int = option(9, "periodic: snapshot sweeps measured, 10 simulated seconds each (9)")
    profile: bool = True  # --no-profile
    profile_bots: int = option(100)
    large_sizes: tuple[int, ...] = option(
        (100, 1000), "large fleet: bots per worker (100,1000)", parse=parse_ints
    )
    # 1,000 bots take ~20 s to start: one run per size by default
    large_runs: int = option(1, "large fleet: runs per size")
    large_idle: float = option(15.0, "large fleet: idle seconds watched (15)")  # threads, context switches
    large_requests: int = 200  # GET /bots per form (unpaged, pages of 100)
    # start/stop: CPU per additional bot between two N
    start_stop_sizes: tuple[int, ...] = option(
        (300, 1000), "start/stop: two or more fleet sizes (300,1000)", parse=parse_ints
    )
    start_stop_runs: int = option(3, "start/stop: runs per size and code (3)")
    # start/stop: main before issue 14 item 5 (one process, no leases)
    start_stop_baseline: str = baseline_option("c08997c", "start/stop")
    # start/stop: the lease fleet (workers) just before issue 14 item 5's start work was merged in
    start_stop_lease_baseline: str = baseline_option("f98bf89", "start/stop (lease fleet)")
    chart: bool = True  # --no-chart
    # longest wait for other processes' CPU bursts to pass before a sample
    quiet_wait: float = option(
        10.0, "longest wait (s) before each sample for other processes' CPU bursts to pass; 0: none"
    )

    def max_bots(self, benchmarks: set[str]) -> int:
        """How many bots the fake Discord needs for the selected benchmarks."""
        needed = [1]
        if "fleet" in benchmarks:
            needed += [*self.sizes, *self.baseline_sizes]
        if "http" in benchmarks:
            needed += self.http_bots
        if "commands" in benchmarks:
            needed.append(self.play_bots)
        if "hot_reload" in benchmarks:
            needed.append(self.reload_inserts + 1)
        if "workers" in benchmarks:
            needed += [self.workers_bots, self.takeover_bots, self.play_bots]
        if "metrics" in benchmarks:
            needed.append(self.metrics_bots)
        if "large_fleet" in benchmarks:
            needed += self.large_sizes
        if "periodic" in benchmarks:
            needed.append(self.periodic_bots)
        if "start_stop" in benchmarks:
            needed += self.start_stop_sizes
        if "profiles" in benchmarks and self.profile:
            needed.append(self.profile_bots)
        return max(needed)


@dataclass
class BenchContext:
    config: BenchConfig
    work_dir: Path  # temporary: logs, ready files; deleted at the end
    children: Children
    database_url: str
    key: str
    world: FakeWorld
    commands: dict[str, CommandLine] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def record_command(self, label: str, command: CommandLine) -> None:
        self.commands[label] = command

    def start_chorus(
        self, database: str, options: ServiceOptions, *, shown_as: str | None = None
    ) -> ChorusProcess:
        """`chorus serve` on `database` of this run's database server, with the fake Discord; its
        command line goes in the report under `shown_as` (None: not shown)."""
        service = start_chorus(self.children, self.world, database_url=self.database_url, database=database,
                               key=self.key, options=options)  # fmt: skip
        if shown_as is not None:
            self.record_command(shown_as, service.command)
        return service

    def wait_for_quiet(self) -> float:
        """Before a measurement: let someone else's burst of CPU pass (bounded, see wait_for_quiet)."""
        if not self.config.quiet_wait:
            return 0.0
        share = wait_for_quiet(self.children, max_wait=self.config.quiet_wait)
        if share >= QUIET_THRESHOLD:
            self.progress(f"  the machine is busy: other processes use {share * 100:.0f}% of its CPU")
        return share

    def progress(self, message: str) -> None:
        _log.info("[%6.1fs] %s", time.monotonic() - self.started, message)
