"""/health's counts of bots this worker does not run agree with their statuses.

`fleet_health` counts from a record and a lease without building each bot's status (it is polled
while a 1,000-bot worker starts); `bot_status` builds the status `/bots` shows. For every kind of
bot a worker can see without running it, the two must say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.bots import overview
from app.bots.manager import BotManager
from app.bots.status import BotState
from app.db.models import BotLease, LeaseStatus, MusicBot, WorkerRecord

ME, OTHER = "host:1:me", "host:2:other"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


@dataclass
class _View:
    leases: dict[int, BotLease] = field(default_factory=dict)

    def lease(self, client_id: int) -> BotLease | None:
        return self.leases.get(client_id)


@dataclass
class _Fleet:
    owners: dict[int, str]
    view: _View
    me: str = ME

    def owner_of(self, client_id: int) -> WorkerRecord | None:
        owner = self.owners.get(client_id)
        return None if owner is None else WorkerRecord(id=owner, address="http://w", host="host", pid=1)

    def live_workers(self) -> int:
        return 2


@dataclass
class _Manager:
    records: dict[int, MusicBot]
    fleet: _Fleet
    settings: Any = field(default_factory=lambda: SimpleNamespace(health_reconnect_threshold=60.0))

    def get_runner(self, client_id: int) -> None:
        return None  # every bot here runs elsewhere, or nowhere

    def record(self, client_id: int) -> MusicBot | None:
        return self.records.get(client_id)

    def fleet_bot_ids(self) -> list[int]:
        return list(self.records)

    def lavalink_nodes(self) -> tuple[int, int]:
        return 0, 0


def _lease(client_id: int, owner: str, status: LeaseStatus | None) -> BotLease:
    return BotLease(id=client_id, owner=owner, epoch=1, status=status)


# (enabled, owner, published status): one bot of each kind a worker sees without running it.
KINDS: dict[str, tuple[bool, str | None, LeaseStatus | None]] = {
    "disabled": (False, None, None),
    "unowned": (True, None, None),
    "held here but not running": (True, ME, None),
    "claimed, not published yet": (True, OTHER, None),
    "ready elsewhere": (True, OTHER, LeaseStatus(state="ready", since=NOW)),
    "stuck elsewhere": (True, OTHER, LeaseStatus(state="reconnecting", since=NOW, stuck=True)),
    "unknown state (a newer version)": (True, OTHER, LeaseStatus(state="hibernating", since=NOW)),
}


def _manager() -> _Manager:
    records: dict[int, MusicBot] = {}
    owners: dict[int, str] = {}
    view = _View()
    for client_id, (enabled, owner, status) in enumerate(KINDS.values(), start=100):
        records[client_id] = MusicBot.model_construct(
            name=f"Bot {client_id}", client_id=client_id, enabled=enabled, updated_at=NOW
        )
        if owner is not None:
            owners[client_id] = owner
            view.leases[client_id] = _lease(client_id, owner, status)
    return _Manager(records=records, fleet=_Fleet(owners=owners, view=view))


# Beanie documents need Beanie initialised to be built (nothing is read or written).
pytestmark = pytest.mark.usefixtures("mongo")


@pytest.mark.parametrize("kind", list(KINDS))
async def test_health_counts_a_remote_bot_as_its_status_says(kind: str) -> None:
    manager = cast(BotManager, _manager())
    client_id = 100 + list(KINDS).index(kind)
    status = overview.bot_status(manager, client_id)
    assert status is not None
    assert overview.bot_state(manager, client_id) is status.state
    alone = {client_id: manager.record(client_id)}
    one = cast(BotManager, _Manager(records=cast(dict[int, MusicBot], alone), fleet=cast(Any, manager).fleet))
    health = overview.fleet_health(one)
    if status.state is BotState.DISABLED:
        assert health.total == 0
        return
    assert health.total == 1
    assert health.ready == (status.state is BotState.READY)
    assert health.stuck == status.stuck
    assert health.unowned == (status.worker is None)


async def test_health_over_a_mixed_fleet_adds_the_statuses_up() -> None:
    manager = cast(BotManager, _manager())
    statuses = [s for s in overview.fleet_statuses(manager) if s.state is not BotState.DISABLED]
    health = overview.fleet_health(manager)
    assert health.total == len(statuses) == len(KINDS) - 1
    assert health.ready == sum(s.state is BotState.READY for s in statuses) == 1
    assert health.stuck == sum(s.stuck for s in statuses) == 1
    assert health.unowned == sum(s.worker is None for s in statuses) == 2
