"""The start pacer: a worker with many bots to start keeps only a few starting at once."""

from __future__ import annotations

import asyncio
from typing import Any

from app.bots.fleet.starts import StartPacer
from app.db.models import LeaseStatus, utcnow

WAIT = 30.0


class Host:
    """The part of `BotHost` the pacer uses: bots it starts stay "starting" until told."""

    def __init__(self) -> None:
        self.states: dict[int, str] = {}
        self.started: list[int] = []
        self.pacer: StartPacer | None = None
        self.refuse: set[int] = set()

    async def run_bot(self, client_id: int, epoch: int) -> bool:
        await asyncio.sleep(0)
        if client_id in self.refuse:
            return False
        self.started.append(client_id)
        self.states[client_id] = "starting"
        return True

    def lease_status(self, client_id: int) -> LeaseStatus | None:
        state = self.states.get(client_id)
        return None if state is None else LeaseStatus(state=state, since=utcnow())

    def settle(self, client_id: int, state: str = "ready") -> None:
        self.states[client_id] = state
        assert self.pacer is not None
        self.pacer.status_changed(client_id)

    def starting(self) -> int:
        return sum(1 for state in self.states.values() if state == "starting")


async def until(predicate: Any, *, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_starts_are_paced_and_each_slot_waits_for_its_bot_to_settle() -> None:
    host = Host()
    held = {client_id: 1 for client_id in range(10)}
    refused: list[int] = []

    async def give_back(client_id: int) -> None:
        refused.append(client_id)

    pacer = StartPacer(
        host=host,  # type: ignore[arg-type]  # a stand-in for the manager
        still_held=lambda client_id, epoch: held.get(client_id) == epoch,
        refused=give_back,
        concurrency=3,
    )
    host.pacer = pacer
    try:
        await pacer.begin(0, 1)  # a free slot: started before `begin` returns
        assert host.started == [0]
        for client_id in range(1, 10):
            await pacer.begin(client_id, 1)
        await until(lambda: len(host.started) == 3, what="three starts")
        assert host.starting() == 3 and pacer.queued() == 7
        del held[5]  # lost meanwhile: skipped, never started
        host.refuse.add(6)  # disabled meanwhile: its lease goes back
        while running := [c for c, state in host.states.items() if state == "starting"]:
            host.settle(running[0], "failed" if running[0] == 2 else "ready")
            # The slot passes to the next queued bot (skipped and refused ones take none).
            await until(lambda: host.starting() == 3 or pacer.queued() == 0, what="the next start")
            assert host.starting() <= 3
        await until(lambda: not any(pacer.pending(c) for c in range(10)), what="every start to settle")
        assert sorted(host.started) == [0, 1, 2, 3, 4, 7, 8, 9]
        assert refused == [6]
    finally:
        await pacer.stop()


async def test_a_start_that_never_settles_gives_its_slot_up() -> None:
    host = Host()

    async def give_back(client_id: int) -> None:
        raise AssertionError("nothing is refused")

    pacer = StartPacer(
        host=host,  # type: ignore[arg-type]
        still_held=lambda client_id, epoch: True,
        refused=give_back,
        concurrency=1,
        settle_seconds=0.05,
    )
    host.pacer = pacer
    try:
        await pacer.begin(1, 1)
        await pacer.begin(2, 1)
        assert host.started == [1]
        await until(lambda: host.started == [1, 2], what="the second start after the first timed out")
    finally:
        await pacer.stop()
