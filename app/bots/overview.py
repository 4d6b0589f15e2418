"""The whole fleet as any worker describes it (`/bots`, `/health`, `/clones`), from memory.

A bot running here is described from its runner; any other from the status its owner published
in the bot's lease, with the owner's id, as long as that owner is live; a bot no live worker
runs is `stopped` with no worker (and makes `/health` degraded until someone takes it over).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.bots.status import BotState, BotStatus, stored_status
from app.db.models import LeaseStatus, MusicBot

if TYPE_CHECKING:
    from app.bots.manager import BotManager


@dataclass(frozen=True, slots=True)
class FleetHealth:
    """What /health says, over the whole fleet."""

    ready: int
    total: int
    failed: int
    stuck: int  # starting or reconnecting longer than HEALTH_RECONNECT_THRESHOLD
    unowned: int  # enabled bots no live worker runs
    workers: int
    lavalink: tuple[int, int]


def bot_status(manager: BotManager, client_id: int) -> BotStatus | None:
    """One bot's status wherever it runs (None: not a bot of the fleet). A disabled bot is
    listed with status `disabled` and no worker: an operator sees the whole fleet."""
    runner = manager.get_runner(client_id)
    if runner is not None:
        return runner.status(worker=manager.fleet.me)
    record = manager.record(client_id)
    if record is None:
        return None
    if not record.enabled:
        return stored_status(record, BotState.DISABLED)
    return _published_status(manager, record)


def bot_state(manager: BotManager, client_id: int) -> BotState | None:
    """`bot_status(...).state` without building the status (what `/bots?status=` filters on)."""
    runner = manager.get_runner(client_id)
    if runner is not None:
        return runner.state
    found = _remote_state(manager, client_id)
    return None if found is None else found[0]


def _remote_state(manager: BotManager, client_id: int) -> tuple[BotState, bool, bool] | None:
    """(state, stuck, unowned) of a bot not running here, from its record and lease only: what
    `bot_status` would say, without building the status (None: not a bot of the fleet)."""
    record = manager.record(client_id)
    if record is None:
        return None
    if not record.enabled:
        return BotState.DISABLED, False, False
    fleet = manager.fleet
    owner = fleet.owner_of(client_id)
    if owner is None or owner.id == fleet.me:
        return BotState.STOPPED, False, True
    lease = fleet.view.lease(client_id)
    if lease is None or lease.status is None:
        return BotState.STARTING, False, False
    return _published_state(lease.status), lease.status.stuck, False


def _published_state(published: LeaseStatus) -> BotState:
    """The state an owner published; one this version does not know counts as starting."""
    try:
        return BotState(published.state)
    except ValueError:
        return BotState.STARTING


def _published_status(manager: BotManager, record: MusicBot) -> BotStatus:
    """A bot this worker does not run, as its owner published it in the lease."""
    fleet = manager.fleet
    owner = fleet.owner_of(record.client_id)
    lease = fleet.view.lease(record.client_id)
    unpublished = stored_status(record, BotState.STOPPED)
    if owner is None or owner.id == fleet.me:
        # No live worker runs it (or this one holds it but may not run it right now).
        return unpublished
    published = lease.status if lease is not None else None
    if published is None:  # claimed a moment ago: its owner has not published yet
        return dataclasses.replace(unpublished, state=BotState.STARTING, worker=owner.id)
    return BotStatus(
        client_id=record.client_id,
        name=record.name,
        state=_published_state(published),
        since=published.since,
        guilds=published.guilds,
        users=published.users,
        latency_ms=published.latency_ms,
        last_error=published.last_error,
        identifies_24h=published.identifies_24h,
        worker=owner.id,
        stuck=published.stuck,
        shards=published.shards,
    )


def fleet_statuses(manager: BotManager) -> list[BotStatus]:
    """Every enabled bot of the fleet (and any bot running here) oldest first, then the
    disabled ones."""
    statuses: list[BotStatus] = []
    disabled: list[BotStatus] = []
    for client_id in manager.fleet_bot_ids():
        status = bot_status(manager, client_id)
        if status is not None:
            (disabled if status.state is BotState.DISABLED else statuses).append(status)
    return statuses + disabled


def fleet_health(manager: BotManager) -> FleetHealth:
    """Counted without building any bot's status (a runner's state and how long it has been
    down, a record's and lease's state are enough): /health is polled often, and a status costs
    tens of microseconds, which at 1,000 bots made every /health cost about 20 ms of the event
    loop (and, polled while a 1,000-bot worker started, about a tenth of its start's CPU)."""
    threshold = manager.settings.health_reconnect_threshold
    now = time.monotonic()
    states: Counter[BotState] = Counter()
    stuck = unowned = 0
    for client_id in manager.fleet_bot_ids():
        runner = manager.get_runner(client_id)
        if runner is not None:  # runs here: this worker owns it, and measures its own downtime
            states[runner.state] += 1
            stuck += runner.down_for(now) > threshold
            continue
        found = _remote_state(manager, client_id)  # described by its record and lease: no runner
        if found is None or found[0] is BotState.DISABLED:
            continue
        state, is_stuck, is_unowned = found
        states[state] += 1
        stuck += is_stuck
        unowned += is_unowned
    return FleetHealth(
        ready=states[BotState.READY],
        total=sum(states.values()),
        failed=states[BotState.FAILED],
        stuck=stuck,
        unowned=unowned,
        workers=manager.fleet.live_workers(),
        lavalink=manager.lavalink_nodes(),
    )
