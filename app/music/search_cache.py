"""`/play` autocomplete: the node's best matches for what the user typed, briefly cached.

Discord sends an autocomplete request for nearly every keystroke and drops answers later than
3 s. Each distinct query is searched once per `TTL` seconds (typing "lofi", deleting a letter
and typing it again asks Lavalink once), and a search that outlasts `DEADLINE` answers nothing
rather than nothing in time. The cache is small and per bot.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

TTL = 60.0  # seconds a query's suggestions are reused
DEADLINE = 2.5  # seconds a search may take before the suggestions are given up
SIZE = 256  # queries remembered
RESULTS = 5  # suggestions shown


@dataclass(frozen=True, slots=True)
class Suggestion:
    label: str  # what the user sees (<= 100 characters)
    value: str  # what /play receives (<= 100 characters)


class SearchCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, list[Suggestion]]] = OrderedDict()

    async def suggest(
        self, query: str, search: Callable[[], Awaitable[list[Suggestion]]]
    ) -> list[Suggestion]:
        key = " ".join(query.casefold().split())
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < TTL:
            self._entries.move_to_end(key)
            return cached[1]
        try:
            async with asyncio.timeout(DEADLINE):
                found = (await search())[:RESULTS]
        except TimeoutError:
            return []
        self._entries[key] = (now, found)
        self._entries.move_to_end(key)
        while len(self._entries) > SIZE:
            self._entries.popitem(last=False)
        return found
