"""StartFactsLoader: a worker whose bots start one by one as their leases arrive still reads what
their starts need in batches, for the bots it holds, keyed by lease epoch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from app.bots import startup
from app.bots.startup import FleetStartFacts, StartFactsLoader


def _bot(client_id: int) -> Any:
    return SimpleNamespace(id=f"record-{client_id}", client_id=client_id, enabled=True)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The bots of each batched read; every bot is active in guild 1, bot 2 has saved players."""
    done: list[list[int]] = []

    async def read(bots: Sequence[Any]) -> FleetStartFacts:
        done.append(sorted(bot.client_id for bot in bots))
        await asyncio.sleep(0)
        return FleetStartFacts(
            {bot.id: {1} for bot in bots}, {2} & {bot.client_id for bot in bots}, {}, set()
        )

    monkeypatch.setattr(startup.FleetStartFacts, "read", read)
    return done


async def test_one_read_covers_every_bot_held_and_not_started(reads: list[list[int]]) -> None:
    bots = {client_id: _bot(client_id) for client_id in range(1, 6)}
    awaiting = {1: 7, 2: 7, 3: 8, 4: 7}  # bot 5 is not held by this worker
    loader = StartFactsLoader(lambda: awaiting, bots.get)

    first = await loader.take(bots[1], 7)
    assert reads == [[1, 2, 3, 4]]
    assert first is not None and first.active_guilds == {1} and not first.has_saved_players
    awaiting.pop(1)
    second = await asyncio.gather(loader.take(bots[2], 7), loader.take(bots[3], 8))
    assert [facts is not None for facts in second] == [True, True]
    assert second[0] is not None and second[0].has_saved_players
    assert reads == [[1, 2, 3, 4]]  # kept from the first read: no read of their own


async def test_facts_are_only_for_the_epoch_they_were_read_under(reads: list[list[int]]) -> None:
    bots = {client_id: _bot(client_id) for client_id in (1, 2)}
    awaiting = {1: 3, 2: 3}
    loader = StartFactsLoader(lambda: awaiting, bots.get)
    await loader.take(bots[1], 3)
    # Bot 2's lease was lost and taken again (epoch 5): what was read under epoch 3 may be stale
    # (another owner ran it meanwhile), so it is read again.
    awaiting.pop(1)
    awaiting[2] = 5
    assert await loader.take(bots[2], 5) is not None
    assert reads == [[1, 2], [2]]
    awaiting.pop(2)  # started
    # Taken once: a restart of bot 1 under the same epoch reads afresh.
    awaiting[1] = 3
    await loader.take(bots[1], 3)
    assert reads == [[1, 2], [2], [1]]
