"""Keep the garbage collector's full collections off an idle fleet.

A worker's heap is large and long-lived: about 575,000 objects tracked by the cyclic garbage
collector at 1,000 bots (every client's state, caches, sockets, tasks). CPython's full collection
(generation 2) walks all of them: 0.43 s of CPU at 1,000 bots, during which the event loop
stands still, and an idle fleet ran one about every minute (0.9% of a core, a third of what the
idle fleet used; docs/PERFORMANCE.md, "Periodic work"). Objects that live as long as their bot
gain nothing from being walked again and again.

So once the fleet has been still for a while (no bot started or stopped for `quiet`), the keeper
collects once and then freezes what is left (`gc.freeze()`): those objects move to the permanent
generation, which collections skip; later collections look only at what was allocated since.
Objects are still freed by reference counting while frozen; only garbage *cycles* among frozen
objects wait (a stopped bot's client, mostly). That is why every settle unfreezes first, so its
full collection sees everything, and why the heap is settled again after any change (once quiet
again), and at the latest every `every` seconds (a gateway reconnect replaces objects too).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)

QUIET = 30.0  # seconds without a change before a settle
EVERY = 600.0  # seconds: settle again at the latest after this long, changes or not


class HeapKeeper:
    """Call `check(state)` now and then (a timer): `state` is anything that changes when bots
    start or stop (the set of running clients). Returns True when it settled the heap."""

    def __init__(
        self,
        *,
        quiet: float = QUIET,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet = quiet
        self._every = every
        self._clock = clock
        self._state: object = None
        self._changed_at = clock()
        self._settled_at: float | None = None  # None: never settled (nothing frozen)
        self.settles = 0
        self.last_settle_seconds = 0.0

    def check(self, state: object) -> bool:
        now = self._clock()
        if state != self._state:
            self._state, self._changed_at = state, now
            return False
        if now - self._changed_at < self._quiet:
            return False
        settled = self._settled_at
        if settled is not None and settled > self._changed_at and now - settled < self._every:
            return False  # settled since the last change, and not long ago
        self._settle(now)
        return True

    def _settle(self, now: float) -> None:
        started = time.perf_counter()
        gc.unfreeze()  # the full collection below must see what was frozen before, too
        collected = gc.collect()
        gc.freeze()
        self.last_settle_seconds = time.perf_counter() - started
        self._settled_at = now
        self.settles += 1
        _log.debug("Heap settled in %.3fs: %d unreachable object(s) collected, %d frozen",
                   self.last_settle_seconds, collected, gc.get_freeze_count())  # fmt: skip

    def release(self) -> None:
        """Unfreeze everything (at shutdown; a test's app, so the next one starts clean)."""
        if self._settled_at is not None:
            gc.unfreeze()
            self._settled_at = None
