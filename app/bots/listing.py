"""`GET /bots` one page at a time: the fleet's bots in client-id order, filtered by state.

Building a status (and serialising it) is what costs at 1,000 bots, so a page picks its client
ids first (a sort of integers and a bisect for the cursor) and builds only the statuses it
returns.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.bots.status import BotState, BotStatus

if TYPE_CHECKING:
    from app.bots.manager import BotManager


@dataclass(frozen=True, slots=True)
class StatusPage:
    statuses: list[BotStatus]
    next_after: int | None  # the cursor of the next page; None on the last one


def status_page(
    manager: BotManager, *, state: BotState | None = None, after: int | None = None, limit: int | None = None
) -> StatusPage:
    """Bots with a client id above `after` (and in `state`, if given), lowest first, at most
    `limit` (None: all the rest)."""
    ids = sorted(manager.known_client_ids())
    start = bisect_right(ids, after) if after is not None else 0
    chosen: list[int] = []
    next_after: int | None = None
    for client_id in ids[start:]:
        if state is not None and manager.state_of(client_id) is not state:
            continue
        if limit is not None and len(chosen) == limit:
            next_after = chosen[-1]
            break
        chosen.append(client_id)
    statuses = [status for client_id in chosen if (status := manager.status_of(client_id)) is not None]
    return StatusPage(statuses=statuses, next_after=next_after)
