"""Snapshot write volume of one code version, as its own process (the harness runs it twice: on
this tree, and with PYTHONPATH on a checkout of the code before the scheduler, for a same-run
ratio):

    python -m benchmarks.snapshot_volume --url mongodb://... --players 1000 --queue 50 --out r.json

It drives the code's real snapshot keeper (and, when it has one, its `MusicScheduler`) against
the real database through PyMongo, with many players of 50 queued tracks made of wavelink's own
`Playable` and `Queue`; only the player around them is a stand-in (a real one needs a voice
connection). The clock is simulated: each sweep stands for `SNAPSHOT_INTERVAL` seconds, every
player plays, and each track lasts `--track-seconds` (track ends are staggered over the players).
A PyMongo command listener sums the BSON size of every write command the sweeps send: the bytes
to the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bson
import wavelink
from pymongo import monitoring

from app.db.connection import connect_database

WRITE_COMMANDS = ("insert", "update", "delete")


class WriteBytes(monitoring.CommandListener):
    def __init__(self) -> None:
        self.bytes = 0
        self.commands = 0
        self.statements = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in WRITE_COMMANDS and event.command.get(name) == "player_snapshots":
            self.bytes += len(bson.encode(event.command))
            self.commands += 1
            for key in ("updates", "deletes", "documents"):
                self.statements += len(event.command.get(key, ()))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return


def track(n: int) -> wavelink.Playable:
    """A Lavalink track payload of the usual size (YouTube-like info, ~600 bytes)."""
    identifier = f"bench{n:07d}xyz"
    data: dict[str, Any] = {
        "encoded": "QAAA" + "x" * 180 + f"{n:07d}",
        "info": {
            "identifier": identifier,
            "isSeekable": True,
            "author": f"Some Artist {n % 97}",
            "length": 180_000,
            "isStream": False,
            "position": 0,
            "title": f"A fairly ordinary song title number {n}",
            "uri": f"https://www.youtube.com/watch?v={identifier}",
            "artworkUrl": f"https://i.ytimg.com/vi/{identifier}/maxresdefault.jpg",
            "isrc": None,
            "sourceName": "youtube",
        },
        "pluginInfo": {},
        "userData": {},
    }
    playable = wavelink.Playable(data)  # pyright: ignore[reportArgumentType]  # Lavalink's own payload
    requester = 100_000_000_000_000_000 + n % 50
    playable.extras = {"requester_id": str(requester), "requester": f"listener {n % 50}"}
    return playable


@dataclass
class StandInPlayer:
    """The attributes of a `ChorusPlayer` a snapshot reads, around wavelink's real queue and tracks."""

    guild: Any
    channel: Any
    current: wavelink.Playable | None
    queue: wavelink.Queue
    started_at: float  # simulated seconds the current track started
    clock: list[float]
    text_channel_id: int | None = 1
    stranded_position: int | None = None
    autoplay: wavelink.AutoPlayMode = wavelink.AutoPlayMode.partial
    volume: int = 100
    filter_preset: str = "reset"
    paused: bool = False
    controller_message_id: int | None = 2
    history: deque[wavelink.Playable] = field(default_factory=lambda: deque(maxlen=50))

    @property
    def position(self) -> float:
        return (self.clock[0] - self.started_at) * 1000

    def next_track(self) -> None:
        if self.current is not None:
            self.history.append(self.current)
        self.current = self.queue.get() if self.queue else None
        self.started_at = self.clock[0]


class StandInService:
    def __init__(self, bot_id: int, players: list[StandInPlayer]) -> None:
        self.bot_id = bot_id
        self._players = players
        self.client = SimpleNamespace()
        self.config = SimpleNamespace(lease_epoch=None)  # what the snapshots read for fencing

    def players(self) -> list[StandInPlayer]:
        return list(self._players)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from app.music import snapshots  # the code version under test (PYTHONPATH)

    listener = WriteBytes()
    monitoring.register(listener)
    client = await connect_database(args.url, args.database)
    clock = [0.0]
    counter = iter(range(10**9))
    services: list[StandInService] = []
    for b in range(args.bots):
        players = []
        for p in range(args.players // args.bots):
            guild_id = 10_000 + b * 1_000 + p
            queue = wavelink.Queue()
            queue.put([track(next(counter)) for _ in range(args.queue)])
            first = track(next(counter))
            # Staggered: player k's track ends at a different sweep from its neighbours'.
            offset = (guild_id % args.track_seconds) if args.track_seconds else 0
            players.append(StandInPlayer(SimpleNamespace(id=guild_id), SimpleNamespace(id=guild_id + 1),
                                         first, queue, -offset, clock))  # fmt: skip
        services.append(StandInService(900_000 + b, players))
    new_code = hasattr(snapshots, "write_snapshots")
    sweep: Callable[[], Awaitable[object]]
    if new_code:
        from app.music.scheduler import MusicScheduler

        scheduler = MusicScheduler(idle_timeout=0, snapshot_interval=args.interval)
        for service in services:
            service.scheduler = scheduler  # type: ignore[attr-defined]  # what MusicService has
            service.snapshots = snapshots.SnapshotKeeper(service, max_age=3600)  # type: ignore[attr-defined,arg-type]
            scheduler.add(service)  # pyright: ignore[reportArgumentType]  # the stand-in
            scheduler.wake(service)  # pyright: ignore[reportArgumentType]
        sweep = scheduler.save_changes
    else:
        keepers = []
        for service in services:
            keeper = snapshots.SnapshotKeeper(service, interval=args.interval, max_age=3600)  # type: ignore[call-arg,arg-type]
            keeper.restored.set()  # the steady state: restoring is long over
            keepers.append(keeper)

        async def old_sweep() -> None:
            for keeper in keepers:  # each bot's own loop, one after the other here
                await keeper.save_all()

        sweep = old_sweep

    await sweep()  # the first sweep writes every player whole in both versions: not steady state
    listener.bytes = listener.commands = listener.statements = 0
    cpu = time.process_time()
    for _ in range(args.sweeps):
        clock[0] += args.interval
        for service in services:
            for player in service.players():
                if player.position >= args.track_seconds * 1000:
                    player.next_track()
        await sweep()
    cpu = time.process_time() - cpu
    await client.drop_database(args.database)
    await client.close()
    simulated = args.sweeps * args.interval
    return {
        "code": "scheduler" if new_code else "per-bot loops",
        "players": args.players,
        "queue": args.queue,
        "sweeps": args.sweeps,
        "simulated_s": simulated,
        "bytes_per_s": listener.bytes / simulated,
        "writes_per_s": listener.statements / simulated,
        "commands_per_s": listener.commands / simulated,
        "cpu_per_sweep_ms": cpu / args.sweeps * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--bots", type=int, default=100, help="the players are spread over these bots")
    parser.add_argument("--queue", type=int, default=50)
    parser.add_argument("--sweeps", type=int, default=36)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--track-seconds", type=int, default=180)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(json.dumps(asyncio.run(measure(args))))


if __name__ == "__main__":
    main()
