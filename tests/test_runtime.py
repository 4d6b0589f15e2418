"""What `chorus serve` does to the process before it serves: the start-up's objects leave the
garbage collector's full passes, and no garbage goes with them."""

from __future__ import annotations

import gc
import weakref

from app.runtime import freeze_startup_objects


class _Node:
    other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """An unreachable reference cycle: only the cyclic collector frees it."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_start_up_objects_are_frozen_and_garbage_is_not() -> None:
    older = _cycle()  # garbage from before: collected, not kept for good
    try:
        frozen = freeze_startup_objects()
        assert older() is None
        assert frozen == gc.get_freeze_count() > 10_000  # the imported modules, classes, functions
        newer = _cycle()  # made afterwards: collected as usual
        gc.collect()
        assert newer() is None
    finally:
        gc.unfreeze()  # this test process goes on running other tests
