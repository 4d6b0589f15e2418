"""The heap keeper: settles (collect, then freeze) only once the bots are still, and again after
a change or at the latest every `every` seconds; frozen garbage cycles are collected then."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app.heap import HeapKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()
    gc.unfreeze()  # whatever a test froze goes back to the collector


def test_settles_once_still_then_only_after_a_change_or_every(clock: Clock) -> None:
    keeper = HeapKeeper(quiet=30, every=600, clock=clock)
    assert not keeper.check(frozenset({1, 2}))  # first look: a change
    clock.now += 29
    assert not keeper.check(frozenset({1, 2}))  # not still for long enough
    clock.now += 1
    assert keeper.check(frozenset({1, 2}))
    assert gc.get_freeze_count() > 0 and keeper.settles == 1
    clock.now += 300
    assert not keeper.check(frozenset({1, 2}))  # settled since the last change
    assert not keeper.check(frozenset({1, 2, 3}))  # a bot started: wait until still again
    clock.now += 29
    assert not keeper.check(frozenset({1, 2, 3}))
    clock.now += 1
    assert keeper.check(frozenset({1, 2, 3})) and keeper.settles == 2
    clock.now += 599
    assert not keeper.check(frozenset({1, 2, 3}))
    clock.now += 1
    assert keeper.check(frozenset({1, 2, 3})) and keeper.settles == 3  # every 600 s at the latest


def test_a_frozen_cycle_that_becomes_garbage_is_collected_at_the_next_settle(clock: Clock) -> None:
    keeper = HeapKeeper(quiet=1, every=600, clock=clock)
    cycle = Cycle()
    gone = weakref.ref(cycle)
    keeper.check("a")
    clock.now += 1
    assert keeper.check("a")  # the cycle is alive: frozen
    del cycle
    gc.collect()
    assert gone() is not None  # frozen: a full collection does not see it
    keeper.check("b")  # e.g. its bot stopped
    clock.now += 1
    assert keeper.check("b")
    assert gone() is None


def test_release_unfreezes(clock: Clock) -> None:
    keeper = HeapKeeper(quiet=0, clock=clock)
    keeper.check("a")
    assert keeper.check("a") and gc.get_freeze_count() > 0
    keeper.release()
    assert gc.get_freeze_count() == 0
