"""One scheduler per worker: idle fleets write nothing; players write only what changed.

Writes are seen as the database sees them: a PyMongo command listener records every command on
the snapshot collection (the real driver, the real bulk writes), and the sweeps are counted by
the scheduler, so "several intervals" is a number of sweeps, never a duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bson
import pytest
from pymongo import monitoring

from app.db.models import PlayerSnapshot
from app.music.scheduler import MusicScheduler
from tests.music.conftest import World, WorldFactory, until

COLLECTION = PlayerSnapshot.Settings.name


class SnapshotCommands(monitoring.CommandListener):
    """Every write command on the snapshot collection, while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if self.active and name in ("insert", "update", "delete") and event.command.get(name) == COLLECTION:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        """(kind, statement) of every write: kind "replace" (a whole document), "update", "delete"."""
        found: list[tuple[str, dict[str, Any]]] = []
        for command in self.commands:
            if "updates" in command:
                for statement in command["updates"]:
                    operators = any(key.startswith("$") for key in statement["u"])
                    found.append(("update" if operators else "replace", statement))
            for statement in command.get("deletes", ()):
                found.append(("delete", statement))
            for document in command.get("documents", ()):
                found.append(("replace", document))
        return found


_LISTENER = SnapshotCommands()
monitoring.register(_LISTENER)  # only clients created afterwards see it: the app's are


@pytest.fixture
def snapshot_commands() -> Iterator[SnapshotCommands]:
    _LISTENER.commands = []
    _LISTENER.active = True
    try:
        yield _LISTENER
    finally:
        _LISTENER.active = False
        _LISTENER.commands = []


def fields(statement: dict[str, Any]) -> dict[str, Any]:
    """The fields a write sets: its `$set`, or the whole replacement document."""
    update = statement["u"]
    return update.get("$set", {}) if any(key.startswith("$") for key in update) else update


def scheduler(world: World) -> MusicScheduler:
    return world.app.manager.scheduler


async def sweeps(world: World, count: int) -> None:
    """Wait until `count` more snapshot sweeps are done."""
    target = scheduler(world).snapshot_sweeps + count
    await until(lambda: scheduler(world).snapshot_sweeps >= target, what=f"{count} sweeps")


async def test_an_idle_fleet_makes_no_snapshot_writes(
    make_world: WorldFactory, snapshot_commands: SnapshotCommands
) -> None:
    world = await make_world(bots=3, snapshot_interval=0.05)
    for bot in world.bots:
        await world.service(bot).snapshots.restored.wait()
    await sweeps(world, 5)
    assert snapshot_commands.commands == []
    assert scheduler(world).active_count() == 0  # nothing for any sweep to look at


async def test_changes_are_written_once_and_small(
    make_world: WorldFactory, snapshot_commands: SnapshotCommands
) -> None:
    world = await make_world(snapshot_interval=0.05)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    for n in range(2, 8):
        await world.run(user, "play", query=f"Song {n}")
    player = world.player()
    assert player is not None and len(player.queue) == 6
    # The now-playing controller is posted in the background; its id is part of the snapshot.
    await until(lambda: player.controller_message_id is not None)

    # The new player is written whole once (at least once the queue is complete)...
    await until(lambda: any(kind == "replace" for kind, _ in snapshot_commands.writes()))
    await sweeps(world, 2)
    stored = await PlayerSnapshot.find_one(PlayerSnapshot.bot_id == world.bot.client_id)
    assert stored is not None and len(stored.queue) == 6
    # ...then a playing player with an unchanged queue costs one small position update a sweep.
    snapshot_commands.commands = []
    done = scheduler(world).snapshot_sweeps
    await sweeps(world, 3)
    writes = snapshot_commands.writes()
    assert writes and all(kind == "update" for kind, _ in writes)
    assert len(writes) <= scheduler(world).snapshot_sweeps - done
    for _, statement in writes:
        assert set(statement["u"]) == {"$set"}
        assert set(statement["u"]["$set"]) == {"position_ms", "saved_at"}
        assert len(bson.encode(statement)) < 300

    # A change: exactly one write carries it, with the small fields and no track list.
    snapshot_commands.commands = []
    await world.run(user, "volume", level=70)
    await until(lambda: any(fields(s).get("volume") == 70 for _, s in snapshot_commands.writes()))
    await sweeps(world, 2)
    carrying = [s for _, s in snapshot_commands.writes() if "volume" in s["u"].get("$set", {})]
    assert len(carrying) == 1
    change = carrying[0]["u"]
    assert set(change) == {"$set"} and not {"queue", "history", "current"} & set(change["$set"])
    assert len(bson.encode(carrying[0])) < 600
    stored = await PlayerSnapshot.find_one(PlayerSnapshot.bot_id == world.bot.client_id)
    assert stored is not None and stored.volume == 70 and len(stored.queue) == 6

    # The next track: the queue loses its head ($pop), the history gains one ($push); no rewrite.
    snapshot_commands.commands = []
    await world.run(user, "skip")
    await world.playing("Song 2")
    await until(lambda: any("$pop" in s["u"] for _, s in snapshot_commands.writes()))
    advance = next(s["u"] for _, s in snapshot_commands.writes() if "$pop" in s["u"])
    assert advance["$pop"] == {"queue": -1}
    assert "queue" not in advance["$set"]
    await sweeps(world, 2)
    stored = await PlayerSnapshot.find_one(PlayerSnapshot.bot_id == world.bot.client_id)
    assert stored is not None and stored.current is not None
    assert stored.current.data["info"]["title"] == "Song 2"
    assert [t.data["info"]["title"] for t in stored.queue] == [f"Song {n}" for n in range(3, 8)]
    assert [t.data["info"]["title"] for t in stored.history] == ["Song 1", "Song 2"]


async def test_a_paused_player_writes_nothing_until_it_changes(
    make_world: WorldFactory, snapshot_commands: SnapshotCommands
) -> None:
    world = await make_world(snapshot_interval=0.05)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    player = world.player()
    assert player is not None
    await until(lambda: player.controller_message_id is not None)  # posted in the background
    await world.run(user, "pause")
    await until(lambda: any(fields(s).get("paused") is True for _, s in snapshot_commands.writes()))
    await sweeps(world, 2)
    snapshot_commands.commands = []
    await sweeps(world, 5)
    assert snapshot_commands.commands == []


async def test_an_ended_player_is_deleted_by_the_next_sweep(
    make_world: WorldFactory, snapshot_commands: SnapshotCommands
) -> None:
    world = await make_world(snapshot_interval=0.05)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    await until(lambda: any(kind == "replace" for kind, _ in snapshot_commands.writes()))
    player = world.player()
    assert player is not None

    await player.disconnect()  # ended without /leave (as when Discord drops it): only the sweep knows
    await until(lambda: any(kind == "delete" for kind, _ in snapshot_commands.writes()))
    await sweeps(world, 2)  # the listener sees the delete sent; a sweep ends once its write is done
    assert await PlayerSnapshot.find(PlayerSnapshot.bot_id == world.bot.client_id).count() == 0
    assert scheduler(world).active_count() == 0  # back to nothing to sweep
    snapshot_commands.commands = []
    await sweeps(world, 3)
    assert snapshot_commands.commands == []
