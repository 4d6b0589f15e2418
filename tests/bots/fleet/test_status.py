"""The status publisher: what a pass compares and writes costs what changed, not the fleet's size."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.bots.fleet.leases import Held, LeaseBook
from app.bots.fleet.status import (
    FULL_SWEEP_EVERY,
    LATENCY_EVERY,
    SWEEP_EVERY,
    StatusPublisher,
    latency_moved,
)
from app.db import leases as lease_db
from app.db.models import LeaseStatus, utcnow

pytestmark = pytest.mark.usefixtures("mongo")

WORKER = "here:1:x"
SINCE: datetime = utcnow()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Host:
    """The part of the manager the publisher reads: each bot's current status."""

    def __init__(self) -> None:
        self.statuses: dict[int, LeaseStatus] = {}

    def lease_status(self, client_id: int) -> LeaseStatus | None:
        return self.statuses.get(client_id)


def ready(latency_ms: float | None = 40.0) -> LeaseStatus:
    return LeaseStatus(state="ready", since=SINCE, guilds=1, users=10, latency_ms=latency_ms)


async def fleet(count: int) -> tuple[StatusPublisher, Host, Clock]:
    ids = list(range(1, count + 1))
    await lease_db.ensure_leases(ids)
    await lease_db.claim_free(WORKER, ids)
    host, clock = Host(), Clock()
    book = LeaseBook(lambda: WORKER)
    book.held = {client_id: Held(epoch=1, restarts=0) for client_id in ids}
    host.statuses = {client_id: ready() for client_id in ids}
    publisher = StatusPublisher(host=host, book=book, worker_id=lambda: WORKER, clock=clock)  # type: ignore[arg-type]  # only lease_status is read
    assert await publisher.publish() == count  # the first publication: every bot
    return publisher, host, clock


async def test_an_idle_fleet_of_ready_bots_is_compared_once_a_full_sweep_and_never_written() -> None:
    publisher, host, clock = await fleet(50)
    compared = publisher.compared
    # Passes by the clock between full sweeps look at no ready bot.
    for _ in range(int(FULL_SWEEP_EVERY / SWEEP_EVERY) - 1):
        clock.now += SWEEP_EVERY
        assert await publisher.publish(publisher.pass_targets(set())) == 0
    assert publisher.compared == compared
    # Every heartbeat moves the latency a little: a full sweep compares every bot and writes nothing.
    for client_id in host.statuses:
        host.statuses[client_id] = ready(latency_ms=40.0 + client_id % 7)
    clock.now += SWEEP_EVERY + LATENCY_EVERY
    targets = publisher.pass_targets(set())
    assert targets is None
    assert await publisher.publish(targets) == 0
    assert publisher.compared == compared + 50


async def test_a_change_is_published_for_the_bot_that_reported_it_only() -> None:
    publisher, host, clock = await fleet(20)
    compared = publisher.compared
    host.statuses[3] = host.statuses[3].model_copy(update={"guilds": 2})
    clock.now += 1.0
    assert await publisher.publish(publisher.pass_targets({3})) == 1
    assert publisher.compared == compared + 1
    lease = await lease_db.get_lease(3)
    assert lease is not None and lease.status is not None and lease.status.guilds == 2


async def test_bots_not_ready_are_compared_every_sweep_so_stuck_follows_the_clock() -> None:
    publisher, host, clock = await fleet(10)
    host.statuses[4] = LeaseStatus(state="reconnecting", since=SINCE)
    clock.now += 1.0
    assert await publisher.publish(publisher.pass_targets({4})) == 1
    host.statuses[4] = LeaseStatus(state="reconnecting", since=SINCE, stuck=True)  # time passed
    clock.now += SWEEP_EVERY
    targets = publisher.pass_targets(set())
    assert targets == {4}
    assert await publisher.publish(targets) == 1
    lease = await lease_db.get_lease(4)
    assert lease is not None and lease.status is not None and lease.status.stuck


async def test_a_latency_that_moved_is_published_at_most_once_a_minute() -> None:
    publisher, host, clock = await fleet(2)
    host.statuses[1] = ready(latency_ms=900.0)
    clock.now += 1.0
    assert publisher.due({1}) == []  # news, but the last publication is not a minute old
    clock.now += LATENCY_EVERY
    [(client_id, _, status)] = publisher.due({1, 2})
    assert client_id == 1 and status.latency_ms == 900.0


async def test_a_bot_turning_ready_publishes_its_first_latency_with_its_state() -> None:
    """The first latency is known at READY (the heartbeat sent on HELLO was acknowledged): held back
    a minute, every bot of a fleet that just started would publish it in one bulk write later."""
    publisher, host, clock = await fleet(3)
    host.statuses[2] = LeaseStatus(state="starting", since=SINCE)
    clock.now += 1.0
    assert await publisher.publish({2}) == 1
    host.statuses[2] = ready(latency_ms=250.0)
    clock.now += 1.0  # well within the minute that holds a latency that moved
    [(client_id, _, status)] = publisher.due({1, 2, 3})
    assert client_id == 2 and status.state == "ready" and status.latency_ms == 250.0
    assert await publisher.publish({2}) == 1
    lease = await lease_db.get_lease(2)
    assert lease is not None and lease.status is not None and lease.status.latency_ms == 250.0
    # Nothing is left for the next full sweep: the fleet publishes nothing more while it idles.
    clock.now += FULL_SWEEP_EVERY + LATENCY_EVERY
    assert await publisher.publish(publisher.pass_targets(set())) == 0
    # A latency that goes (the gateway dropped) is news at once too, with the state.
    host.statuses[2] = LeaseStatus(state="reconnecting", since=SINCE, latency_ms=None)
    clock.now += 1.0
    [(_, _, gone)] = publisher.due({2})
    assert gone.latency_ms is None and gone.state == "reconnecting"


def test_latency_moves_only_by_both_thresholds() -> None:
    assert not latency_moved(40.0, 80.0)  # +40 ms: jitter
    assert latency_moved(40.0, 95.0)  # +55 ms, more than half
    assert not latency_moved(400.0, 460.0)  # +60 ms of 400: less than half
    assert latency_moved(400.0, 700.0)
    assert latency_moved(None, 40.0) and latency_moved(40.0, None) and not latency_moved(None, None)
