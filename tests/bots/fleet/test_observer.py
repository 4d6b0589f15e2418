"""Expiry by observation: the rules, with time passed in (no sleeps, no clocks compared)."""

from __future__ import annotations

from app.bots.fleet.observer import HeartbeatObserver

TTL = 15.0


def test_a_counter_that_stands_still_for_ttl_between_two_reads_is_dead() -> None:
    observer = HeartbeatObserver(TTL)
    observer.observe({"a": 7, "b": 3}, now=100.0)
    observer.observe({"a": 8, "b": 3}, now=110.0)  # a heartbeats, b does not
    assert observer.dead() == {}
    observer.observe({"a": 9, "b": 3}, now=114.9)
    assert observer.dead() == {}  # 14.9 s of silence: not yet
    observer.observe({"a": 10, "b": 3}, now=115.0)
    assert observer.dead() == {"b": 3}  # the counter a reap must still find
    assert observer.is_dead("b") and not observer.is_dead("a")


def test_only_a_read_proves_silence_not_the_time_passing() -> None:
    """Without a read at the end, no amount of elapsed time makes a worker dead: our own loop
    may have been the one that stalled."""
    observer = HeartbeatObserver(TTL)
    observer.observe({"b": 3}, now=0.0)
    assert observer.silent_for("b", now=1000.0) == 1000.0
    assert observer.dead() == {}


def test_a_failed_read_starts_observation_again_from_zero() -> None:
    """After our own database outage everyone gets a full TTL to heartbeat again, even if the
    silence we saw before the outage plus the outage is longer than TTL."""
    observer = HeartbeatObserver(TTL)
    observer.observe({"b": 3}, now=0.0)
    observer.lost_sight()
    observer.observe({"b": 3}, now=20.0)
    assert observer.dead() == {}
    observer.observe({"b": 3}, now=34.0)
    assert observer.dead() == {}
    observer.observe({"b": 3}, now=35.0)
    assert observer.dead() == {"b": 3}


def test_any_change_restarts_the_silence_even_from_a_late_stream_event() -> None:
    observer = HeartbeatObserver(TTL)
    observer.observe({"b": 5}, now=0.0)
    observer.saw("b", 4, now=10.0)  # an older value delivered late: counts as a change (safe side)
    observer.observe({"b": 5}, now=20.0)
    assert observer.dead() == {}
    observer.observe({"b": 5}, now=35.0)
    assert observer.dead() == {"b": 5}


def test_a_worker_that_left_is_forgotten() -> None:
    observer = HeartbeatObserver(TTL)
    observer.observe({"b": 1, "c": 1}, now=0.0)
    observer.observe({"c": 1}, now=20.0)  # b's document is gone (clean exit or reaped)
    assert observer.dead() == {"c": 1}
    assert observer.silent_for("b", now=20.0) is None
    observer.forget("c")
    assert observer.dead() == {}


def test_the_next_expiry_is_when_the_earliest_silence_reaches_ttl() -> None:
    """What the mirror reads the workers again for: a read then proves a silent worker dead
    without waiting for the read after our next heartbeat."""
    observer = HeartbeatObserver(TTL)
    assert observer.next_expiry(besides="me") is None
    observer.observe({"me": 1, "a": 7, "b": 3}, now=100.0)
    observer.saw("a", 8, now=101.0)  # a's next heartbeat, delivered by the stream
    assert observer.next_expiry(besides="me") == 115.0  # b's silence, since 100
    assert not observer.read_since(115.0)
    observer.observe({"me": 2, "a": 8, "b": 3}, now=115.0)  # the read at that moment
    assert observer.read_since(115.0) and observer.dead() == {"b": 3}
    assert observer.next_expiry(besides="me") == 116.0  # b proven dead; a's silence is next
    observer.lost_sight()  # a failed read: no silence is under way any more
    assert observer.next_expiry(besides="me") is None
