"""The paced stop of many bots: bounded concurrency, one deadline, what was cut off is logged.

The runners here are stand-ins with what `stop_runners` uses (`begin_stop`, `stop`, `abandon`,
`client_id`, `identify_ledger`, `client.gateway_sockets()`/`client.music.snapshots`): a real bot's stop cannot
be made to hang on purpose. The stop of real bots is tested end to end in tests/test_serve_process.py."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from app.bots.fleet_stop import stop_runners


@dataclass
class _Socket:
    closed_with: list[int] = field(default_factory=list)

    async def close(self, *, code: int) -> bool:
        self.closed_with.append(code)
        return True


@dataclass
class _Book:
    async def close(self, timeout: float) -> None:
        pass


_BOOK = _Book()


@dataclass
class _Runner:
    client_id: int
    hangs: bool
    gauge: dict[str, int]
    socket: _Socket = field(default_factory=_Socket)
    stopped: bool = False
    stopping: bool = False
    abandoned: bool = False
    stopped_without_writes: bool = False

    def begin_stop(self) -> None:
        self.stopping = True

    def abandon(self) -> None:
        self.abandoned = True

    def __post_init__(self) -> None:
        self.saved = False
        self.identify_ledger = SimpleNamespace(book=_BOOK)
        snapshots = SimpleNamespace(changes=self._changes)
        self.client = SimpleNamespace(
            music=SimpleNamespace(snapshots=snapshots), gateway_sockets=lambda: [self.socket]
        )

    def _changes(self, now: float, deletions: bool) -> list[Any]:
        self.saved = True
        return []

    async def stop(self, *, timeout: float, abandon: bool = False) -> None:
        self.stopped_without_writes = abandon
        self.gauge["now"] += 1
        self.gauge["most"] = max(self.gauge["most"], self.gauge["now"])
        try:
            await asyncio.sleep(3600 if self.hangs else 0.01)
            self.stopped = True
        finally:
            self.gauge["now"] -= 1


async def test_stops_a_few_at_a_time_and_cuts_off_the_rest_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gauge = {"now": 0, "most": 0}
    runners = [_Runner(client_id=n, hangs=n in (3, 17), gauge=gauge) for n in range(40)]
    fleet: list[Any] = runners
    with caplog.at_level(logging.INFO, logger="app.bots.fleet_stop"):
        outcome = await stop_runners(fleet, deadline=2.0, concurrency=4)
    assert gauge["most"] == 4  # never more closes at once than allowed
    assert all(runner.stopping for runner in runners)  # all marked first: none reconnects meanwhile
    assert [runner.client_id for runner in runners if runner.abandoned] == [3, 17]
    assert outcome.stopped == 38 and sorted(outcome.abandoned) == [3, 17]
    assert all(runner.stopped for runner in runners if not runner.hangs)
    # The two cut off: their gateway sockets get a close frame anyway; the others were closed by
    # their own stop (not by the cut-off).
    assert [runner.client_id for runner in runners if runner.socket.closed_with] == [3, 17]
    assert outcome.players_saved == 0
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "2 of 40 bot(s) not stopped cleanly (3, 17)" in warning
    assert gauge["now"] == 0  # the hung stops were cancelled, not left running


async def test_nothing_to_stop() -> None:
    outcome = await stop_runners([], deadline=1.0)
    assert outcome.stopped == 0 and outcome.abandoned == []


async def test_a_stop_without_the_database_writes_nothing_at_the_same_pace() -> None:
    """A worker draining with the database out of reach: the same paced stop, no batched save,
    every bot closed without writes."""
    gauge = {"now": 0, "most": 0}
    runners = [_Runner(client_id=n, hangs=False, gauge=gauge) for n in range(10)]
    fleet: list[Any] = runners
    outcome = await stop_runners(fleet, deadline=5.0, concurrency=3, abandon=True)
    assert outcome.stopped == 10 and outcome.players_saved is None
    assert gauge["most"] == 3
    assert not any(runner.saved for runner in runners)
    assert all(runner.stopped and runner.stopped_without_writes for runner in runners)
