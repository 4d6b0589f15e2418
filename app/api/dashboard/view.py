"""What the dashboard shows, as one JSON document: `fleet_view()`.

The page renders it on the server, then its script fetches it again every few seconds from
`GET /dashboard/state`. It is the one data source of the page. Workers and bots are the whole
fleet's (docs/SCALING.md), from this worker's mirror of the `workers` and `bot_leases`
collections: any worker's page shows every worker and every bot with the worker running it.
Players and Lavalink nodes are this worker's own (live objects of its bots).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.bots.events import FleetEvents
from app.bots.manager import BotManager
from app.bots.status import BotState
from app.bots.telemetry import lavalink_servers, player_state
from app.db.models import utcnow
from app.logs import public_reason

EVENTS_SHOWN = 50
# Problems first: an operator opens the page because something is wrong.
_STATE_ORDER = {
    BotState.FAILED: 0,
    BotState.RECONNECTING: 1,
    BotState.STARTING: 2,
    BotState.READY: 3,
    BotState.STOPPED: 4,
    BotState.DISABLED: 5,
}


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class WorkerView(_View):
    id: str
    address: str
    state: str = Field(description="active, draining (handing its bots over) or dead (heartbeat stopped)")
    bots: int = Field(description="Bots whose lease it holds")
    ready: int
    uptime: float | None = Field(description="Seconds since it registered (None: not known)")
    heartbeat_age: float | None = Field(description="Seconds since its heartbeat was last seen to change")
    current: bool = Field(description="The worker that answered this request")


class BotView(_View):
    client_id: str
    name: str
    state: BotState
    guilds: int
    latency_ms: float | None
    worker: str | None = Field(description="The worker running it; None while no live worker does")
    last_error: str | None


class PlayingView(_View):
    guild: str
    guild_id: str
    channel: str
    track: str | None
    author: str | None
    position_ms: int
    length_ms: int | None = Field(description="None for a stream")
    state: str = Field(description="playing, paused, stranded (its Lavalink node is down) or idle")
    listeners: int
    queued: int
    bot: str
    bot_id: str


class NodeView(_View):
    name: str
    state: str
    bots_connected: int
    connections: int
    players: int | None = Field(description="Players on the server (all its clients), from its stats op")
    playing: int | None
    load: float | None = Field(description="Lavalink's CPU load, 0 to 1")


class EventView(_View):
    at: datetime
    kind: str
    text: str


class SummaryView(_View):
    bots: int
    ready: int
    failed: int
    players: int
    database: str


class FleetView(_View):
    generated_at: datetime
    summary: SummaryView
    workers: list[WorkerView]
    bots: list[BotView]
    playing: list[PlayingView]
    nodes: list[NodeView]
    events: list[EventView]


def _workers(manager: BotManager, bots: list[BotView], *, address: str) -> list[WorkerView]:
    """Every registered worker, oldest first, from the fleet's mirror of `workers`."""
    ready = Counter(bot.worker for bot in bots if bot.state is BotState.READY)
    now = utcnow()
    views: list[WorkerView] = []
    for worker in manager.fleet.workers():
        record = manager.fleet.worker(worker.id)
        started = record.started_at if record is not None else None
        if worker.me and started is None:
            started = manager.started_at
        views.append(
            WorkerView(
                id=worker.id,
                address=worker.address or (address if worker.me else ""),
                state=worker.state,
                bots=worker.bots,
                ready=ready[worker.id],
                uptime=round((now - started).total_seconds(), 1) if started is not None else None,
                heartbeat_age=worker.heartbeat_age,
                current=worker.me,
            )
        )
    return views


def fleet_view(manager: BotManager, *, database_up: bool, address: str, events: FleetEvents) -> FleetView:
    """The fleet as this worker sees it."""
    statuses = sorted(
        manager.statuses(), key=lambda s: (_STATE_ORDER.get(s.state, 9), s.name.lower(), s.client_id)
    )
    bots = [
        BotView(
            client_id=str(status.client_id),
            name=status.name,
            state=status.state,
            guilds=status.guilds,
            latency_ms=status.latency_ms,
            worker=status.worker,
            last_error=public_reason(status.last_error) if status.last_error else None,
        )
        for status in statuses
    ]
    playing: list[PlayingView] = []
    for runner in manager.runners:
        client = runner.client
        if client is None or runner.state is not BotState.READY:
            continue
        music = client.music
        for player in music.players():
            guild, channel, track = player.guild, player.channel, player.current
            if guild is None or channel is None:
                continue
            position = player.stranded_position if player.stranded_position is not None else player.position
            playing.append(
                PlayingView(
                    guild=guild.name,
                    guild_id=str(guild.id),
                    channel=getattr(channel, "name", str(channel.id)),
                    track=track.title if track is not None else None,
                    author=track.author if track is not None else None,
                    position_ms=int(position) if math.isfinite(position) else 0,
                    length_ms=None if track is None or track.is_stream else track.length,
                    state=player_state(player),
                    listeners=len(music.listeners(player)),
                    queued=len(player.queue),
                    bot=runner.name,
                    bot_id=str(runner.client_id),
                )
            )
    playing.sort(key=lambda p: (p.guild.lower(), p.channel.lower()))
    nodes = [
        NodeView(
            name=server.name,
            state=server.state,
            bots_connected=server.connected,
            connections=server.connections,
            players=server.players,
            playing=server.playing,
            load=server.load,
        )
        for server in sorted(lavalink_servers(manager), key=lambda s: s.name)
    ]
    ready = sum(1 for bot in bots if bot.state is BotState.READY)
    return FleetView(
        generated_at=utcnow(),
        summary=SummaryView(
            bots=len(bots),
            ready=ready,
            failed=sum(1 for bot in bots if bot.state is BotState.FAILED),
            players=len(playing),
            database="ok" if database_up else "unreachable",
        ),
        workers=_workers(manager, bots, address=address),
        bots=bots,
        playing=playing,
        nodes=nodes,
        events=[EventView(at=e.at, kind=e.kind.value, text=e.text) for e in events.recent(EVENTS_SHOWN)],
    )
