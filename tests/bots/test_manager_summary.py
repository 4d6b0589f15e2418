"""The worker heartbeat's summary: counting Lavalink connections visits every bot, so not every beat."""

from __future__ import annotations

from typing import Any

import pytest

from app.bots import manager as manager_module
from app.bots.manager import LAVALINK_SUMMARY_EVERY, BotManager
from app.tokens import TokenCipher


def test_lavalink_connections_are_counted_at_most_once_per_interval(
    make_settings: Any, encryption_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = BotManager(settings=make_settings(), cipher=TokenCipher([encryption_key]))
    now = [1000.0]
    monkeypatch.setattr(manager_module.time, "monotonic", lambda: now[0])
    counts = iter([(3, 4), (1, 4)])
    visits: list[float] = []

    def count() -> tuple[int, int]:
        visits.append(now[0])
        return next(counts)

    monkeypatch.setattr(manager, "local_lavalink_nodes", count)
    assert manager.summary() == (0, (3, 4))
    for _ in range(4):  # heartbeats within the interval reuse the count
        now[0] += LAVALINK_SUMMARY_EVERY / 5
        assert manager.summary() == (0, (3, 4))
    now[0] += LAVALINK_SUMMARY_EVERY / 5
    assert manager.summary() == (0, (1, 4))  # a node went down: seen within the interval
    assert visits == [1000.0, 1000.0 + LAVALINK_SUMMARY_EVERY]
