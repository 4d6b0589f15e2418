"""The fleet's gauges for `GET /metrics`, computed at scrape time from memory.

A gauge updated on every event (a bot's state change, a player's pause) would put metric code
in every corner of the fleet and cost something on every event; a scrape every 15 s or so is
rarer than the events it summarises. So `FleetCollector` walks the manager's runners once per
scrape: no I/O, no lock, a few dictionary reads per bot, well under the 50 ms budget at 1,000
bots (see docs/OPERATIONS.md, "Monitoring"). Labels are bounded: states, Lavalink server names
from LAVALINK_NODES, and bot ids (at most one series per bot), never guilds or users.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.bots.fleet.coordinator import LEASE_STATES
from app.bots.status import BotState
from app.db.models import utcnow
from app.metrics import EVENT_METRICS
from app.music.nodes import NodeReport
from app.music.player import ChorusPlayer

if TYPE_CHECKING:
    from app.bots.manager import BotManager
    from app.bots.runner import BotRunner

__all__ = ("LEASE_STATES", "PLAYER_STATES", "FleetCollector", "LavalinkServerView", "build_registry")

PLAYER_STATES = ("playing", "paused", "stranded", "idle")
# A healthy bot spends a few IDENTIFYs a day (one per start): a series for each of 1,000 bots would
# be most of a scrape's cost and say nothing. Bots from this share up are exported, so an alert's
# max() sees every bot that matters (its threshold is far above), and the scrape stays small.
BUDGET_SHOWN = 0.05
LeaseCounts = Callable[[], Mapping[str, int]]


def player_state(player: ChorusPlayer) -> str:
    if player.stranded_position is not None:
        return "stranded"  # its Lavalink node died and no other node could take it yet
    if player.paused:
        return "paused"
    if player.playing:
        return "playing"
    return "idle"


@dataclass
class LavalinkServerView:
    """One Lavalink server as this worker's bots see it: connected when any bot's connection to
    it is up; players and load from its latest `stats` op (Lavalink's own, server-wide)."""

    name: str
    connections: int = 0
    connected: int = 0
    players: int | None = None
    playing: int | None = None
    load: float | None = None  # Lavalink's process CPU load, 0..1
    system_load: float | None = None

    @property
    def state(self) -> str:
        return "connected" if self.connected else "disconnected"

    def add(self, report: NodeReport) -> None:
        self.connections += 1
        if not report.connected:
            return
        self.connected += 1
        stats = report.stats
        if stats is not None and self.players is None:  # every connection gets the same stats op
            self.players, self.playing = stats.players, stats.playing
            self.load, self.system_load = stats.cpu.lavalink_load, stats.cpu.system_load


def lavalink_servers(manager: BotManager) -> list[LavalinkServerView]:
    """The Lavalink servers of LAVALINK_NODES over every running bot (each has its own nodes)."""
    servers: dict[str, LavalinkServerView] = {}
    for runner in manager.runners:
        _add_links(servers, runner)
    return list(servers.values())


def _add_links(servers: dict[str, LavalinkServerView], runner: BotRunner) -> None:
    client = runner.client
    if client is None or runner.state in (BotState.FAILED, BotState.STOPPED):
        return
    for report in client.music.nodes.reports():
        server = servers.get(report.server)
        if server is None:
            server = servers[report.server] = LavalinkServerView(report.server)
        server.add(report)


class FleetCollector(Collector):
    def __init__(
        self, manager: BotManager, *, database_up: Callable[[], bool], lease_counts: LeaseCounts | None = None
    ) -> None:
        self._manager = manager
        self._database_up = database_up
        # The fleet's leases, fleet-wide (`FleetCoordinator.lease_states`); None: not exported.
        self.lease_counts = lease_counts

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time; nothing to check for duplicates up front

    def collect(self) -> Iterator[Metric]:
        # One pass over the runners: at 1,000 bots every attribute read per bot counts.
        states: Counter[BotState] = Counter()
        players: Counter[str] = Counter()
        servers: dict[str, LavalinkServerView] = {}
        guilds = voice = 0
        budget = GaugeMetricFamily(
            "chorus_identify_budget_used_ratio",
            "Share of its daily IDENTIFY budget (IDENTIFY_BUDGET_SHARE of Discord's 1000) a bot has "
            f"used in the last 24 h; at 1 it stops retrying. Only bots at {BUDGET_SHOWN:.0%} or more",
            labels=["bot"],
        )
        now = utcnow()
        runners = self._manager.runners
        # Disabled bots are stored but never run: they have no runner (the same count on every
        # worker); the enabled bots other workers run are theirs to export.
        states[BotState.DISABLED] = self._manager.disabled_count()
        for runner in runners:
            state = runner.state
            states[state] += 1
            ledger = runner.identify_ledger
            used = ledger.count(now=now) / max(1, ledger.budget)
            if used >= BUDGET_SHOWN:
                budget.add_metric([str(ledger.client_id)], used)
            _add_links(servers, runner)
            client = runner.client
            if client is None or state is not BotState.READY:
                continue
            guilds += len(client.guilds)
            for player in client.music.players():
                players[player_state(player)] += 1
                voice += player.connected

        bots = GaugeMetricFamily("chorus_bots", "Bots of this worker by state", labels=["state"])
        for state in BotState:
            bots.add_metric([state.value], states[state])
        yield bots
        yield _gauge("chorus_guilds", "Guild memberships of this worker's ready bots (a guild with two of "
                     "our bots counts twice)", guilds)  # fmt: skip
        yield _gauge("chorus_voice_connections", "Voice channels this worker's bots are connected to", voice)
        by_state = GaugeMetricFamily("chorus_players", "Music players by state", labels=["state"])
        for state in PLAYER_STATES:
            by_state.add_metric([state], players[state])
        yield by_state
        yield budget
        yield from _lavalink_metrics(list(servers.values()))
        yield _gauge("chorus_database_up", "1 while the database answers its pings, else 0",
                     int(self._database_up()))  # fmt: skip
        if self.lease_counts is not None:
            counts = self.lease_counts()
            leases = GaugeMetricFamily(
                "chorus_leases",
                "Enabled bots of the whole fleet by lease: held by a live worker, expired (its owner "
                "was observed dead), unowned (no owner)",
                labels=["state"],
            )
            for state in LEASE_STATES:
                leases.add_metric([state], counts.get(state, 0))
            yield leases


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _lavalink_metrics(servers: list[LavalinkServerView]) -> Iterator[Metric]:
    states = Counter(server.state for server in servers)
    nodes = GaugeMetricFamily(
        "chorus_lavalink_nodes",
        "Lavalink servers (LAVALINK_NODES) by state: connected when any bot of this worker is connected",
        labels=["state"],
    )
    for state in ("connected", "disconnected"):
        nodes.add_metric([state], states[state])
    yield nodes
    players = GaugeMetricFamily(
        "chorus_lavalink_node_players",
        "Players on a Lavalink server (its stats op, all clients)",
        labels=["node"],
    )
    cpu = GaugeMetricFamily(
        "chorus_lavalink_node_cpu_ratio", "Lavalink's own CPU load on a server, 0 to 1 (its stats op)",
        labels=["node"],
    )  # fmt: skip
    for server in servers:
        if server.players is not None:
            players.add_metric([server.name], server.players)
        if server.load is not None:
            cpu.add_metric([server.name], server.load)
    yield players
    yield cpu


def build_registry(
    manager: BotManager, *, database_up: Callable[[], bool], lease_counts: LeaseCounts | None = None
) -> CollectorRegistry:
    """What one app's /metrics serves: the event counters, the fleet's gauges, the process."""
    registry = CollectorRegistry()
    for metric in EVENT_METRICS:
        registry.register(metric)
    registry.register(FleetCollector(manager, database_up=database_up, lease_counts=lease_counts))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
