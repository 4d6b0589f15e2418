"""Expiry without trusting clocks: when another worker may be declared dead.

Nobody compares timestamps written by another host. Each worker reads every other worker's
heartbeat *counter* and notes, on its own monotonic clock, when it first saw the current value
(the rule Kubernetes' leader election applies with `observedTime`). The counter only ever grows,
so the same value in two reads at least LEASE_TTL apart proves that no heartbeat landed in
between: that worker is dead, whatever the hosts' clocks say. A failed read proves nothing, so
it forgets every sighting and observation starts again from zero (after an outage of our own,
everyone gets a full LEASE_TTL to heartbeat again).

Pure: time is passed in, so the rules are tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(slots=True)
class _Sighting:
    counter: int
    since: float  # our monotonic time of the first read that showed `counter`


class HeartbeatObserver:
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._seen: dict[str, _Sighting] = {}
        self._last_read: float | None = None  # when the last successful full read was made

    def observe(self, counters: Mapping[str, int], now: float) -> None:
        """One successful read of every registered worker's counter, made at `now`."""
        for worker_id, counter in counters.items():
            self.saw(worker_id, counter, now)
        for gone in set(self._seen) - set(counters):
            del self._seen[gone]
        self._last_read = now

    def saw(self, worker_id: str, counter: int, now: float) -> None:
        """One worker's counter as read (or delivered by a change stream) at `now`. A change
        restarts its silence; the same value changes nothing."""
        sighting = self._seen.get(worker_id)
        if sighting is None or sighting.counter != counter:
            self._seen[worker_id] = _Sighting(counter, now)

    def forget(self, worker_id: str) -> None:
        self._seen.pop(worker_id, None)

    def lost_sight(self) -> None:
        """A read failed: whatever was seen before no longer proves anything about silence."""
        self._seen.clear()
        self._last_read = None

    def silent_for(self, worker_id: str, now: float) -> float | None:
        """Seconds since this worker's counter was last seen changing (None: not seen)."""
        sighting = self._seen.get(worker_id)
        return None if sighting is None else max(0.0, now - sighting.since)

    def dead(self) -> dict[str, int]:
        """Workers whose counter stood still for TTL between two of our successful reads, with
        the counter that stood still (a reap must find exactly that value)."""
        if self._last_read is None:
            return {}
        return {
            worker_id: sighting.counter
            for worker_id, sighting in self._seen.items()
            if self._last_read - sighting.since >= self.ttl
        }

    def next_expiry(self, *, besides: str) -> float | None:
        """Our monotonic time at which the earliest silence (of a worker other than `besides`, not
        yet proven dead) reaches TTL: a successful read from then on that still shows the same
        counter proves that worker dead. None: no silence is under way."""
        return min(
            (
                sighting.since + self.ttl
                for worker_id, sighting in self._seen.items()
                if worker_id != besides and not self.is_dead(worker_id)
            ),
            default=None,
        )

    def read_since(self, moment: float) -> bool:
        """A successful full read was made at or after `moment`."""
        return self._last_read is not None and self._last_read >= moment

    def is_dead(self, worker_id: str) -> bool:
        sighting = self._seen.get(worker_id)
        return (
            sighting is not None
            and self._last_read is not None
            and self._last_read - sighting.since >= self.ttl
        )
