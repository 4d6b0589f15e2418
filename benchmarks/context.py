"""What every benchmark module receives: the configuration and the running world."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.processes import Children, CommandLine, wait_for_quiet
from benchmarks.service import ChorusProcess, FakeWorld, ServiceOptions, start_chorus

_log = logging.getLogger("benchmarks")
QUIET_THRESHOLD = 0.1


@dataclass(frozen=True)
class BenchConfig:
    """Sizes, repetitions and durations. The defaults are what `make bench` runs."""

    sizes: tuple[int, ...] = (1, 10, 50, 100, 200)
    # N processes of ~45 MiB each importing discord.py on 2 cores: 200 is too heavy to repeat.
    baseline_sizes: tuple[int, ...] = (1, 10, 50, 100)
    runs: int = 3
    settle: float = 3.0
    # GUILD_READY_TIMEOUT of each fleet variant; None is the service's default (2 s). The first is the
    # primary variant: memory per bot and the baseline comparison use it.
    ready_timeouts: tuple[float | None, ...] = (None, 0.1)
    guilds: int = 1
    http_bots: tuple[int, ...] = (1, 100)
    http_rate: float = 200.0
    http_duration: float = 10.0
    http_saturate_duration: float = 5.0
    http_connections: int = 16
    http_paths: tuple[str, ...] = ("/health", "/bots")
    play_bots: int = 10  # commands: bots in the guild, one voice channel each
    play_users: int = 50  # concurrent /play users, spread evenly over the voice channels
    play_warm_rounds: int = 5  # bursts after every channel has a bot playing
    # commands: the same bursts on this git ref, in the same run ("" for none), `runs` times each
    play_baseline: str = "c08997c"
    reload_inserts: int = 20  # hot reload: bots inserted one after the other, per variant
    workers_bots: int = 2000  # several workers: the fleet spread over `worker_counts` workers
    worker_counts: tuple[int, ...] = (1, 2)
    takeover_bots: int = 2000  # two workers with this many bots; one is SIGKILLed
    takeover_runs: int = 3
    workers_lease_ttl: float | None = None  # None: the service's default (15 s)
    workers_ready_timeout: float | None = None  # GUILD_READY_TIMEOUT of the workers; None: default
    workers_play_runs: int = 3  # the commands burst (play_*) over 1 and over 2 workers, runs per side
    metrics_bots: int = 1000  # monitoring: the goal is a cheap /metrics at 1,000 bots
    metrics_scrapes: int = 50
    periodic_bots: int = 1000  # periodic work: the idle fleet (the goal is stated at 1,000)
    periodic_window: float = 60.0  # seconds of each window (`runs` of them) the idle fleet is read over
    # periodic: the code before the worker scheduler (per-bot idle/snapshot loops and per-node
    # watchdogs), measured in the same run for the ratios; "" for none
    periodic_baseline: str = "16e8f9e"
    snapshot_players: int = 1000  # snapshot volume: players of 50 queued tracks
    snapshot_sweeps: int = 9  # sweeps of 10 simulated seconds after the first
    profile: bool = True
    profile_bots: int = 100
    large_sizes: tuple[int, ...] = (100, 1000)  # large fleet: bots per worker
    large_runs: int = 1  # 1,000 bots take ~20 s to start: one run per size by default
    large_idle: float = 15.0  # seconds of idle watched for threads and context switches
    large_requests: int = 200  # GET /bots per form (unpaged, pages of 100)
    start_stop_sizes: tuple[int, ...] = (300, 1000)  # start/stop: CPU per additional bot between two N
    start_stop_runs: int = 3
    chart: bool = True
    quiet_wait: float = 10.0  # longest wait for other processes' CPU bursts to pass before a sample

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
