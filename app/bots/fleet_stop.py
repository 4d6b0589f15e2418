"""Stopping many bots at once (SIGTERM, a worker handing its bots over): paced and bounded.

Gathering every bot's `BotRunner.stop()` at once on one event loop made a stop of 1,000 bots take
over a minute: 1,000 snapshot writes, 1,000 gateway close handshakes and 1,000 Lavalink closes
competing for the loop and the database, each bot's own timeout running while it waited its turn.
`stop_runners` instead:

1. saves every bot's players in ONE bulk write (`write_snapshots`), first, so a stop cut short
   still resumes every player (each bot's own save in its stop then finds nothing left to write),
   and the IDENTIFYs still queued of every bot (their `IdentifyLogBook`, one for a worker) in
   another;
2. stops the bots `concurrency` at a time, each bounded by its own timeout;
3. gives up waiting at `deadline`: the bots not stopped yet have their gateway sockets closed
   without waiting for the close handshake and their tasks cancelled, and what was not done is
   logged.

Every bot is marked as stopping first, so that none waiting for its turn reconnects. What holds
the process after the deadline is `chorus serve`'s concern: it exits by itself `EXIT_GRACE` later
(`app/shutdown.ExitDeadline`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.music.snapshots import SnapshotWrite, write_snapshots
from app.shutdown import cancel_bounded

if TYPE_CHECKING:
    from app.bots.runner import BotRunner

_log = logging.getLogger(__name__)

# Bots closing at the same time. A bot's close is mostly waiting (its gateway close handshake, its
# Lavalink node's), not CPU: 32 at a time made 1,000 bots take 31 rounds of those waits (10-40 s);
# 256 overlap them, and still keep each close within its own timeout on a busy loop.
STOP_CONCURRENCY = 256
# The batched save of every player gets at most this share of the deadline.
_SAVE_SHARE = 0.25
# After the deadline: how long the sockets of the bots not stopped get to send their close frame,
# then how long their cancelled stops get to end.
_ABANDON_GRACE = 1.0
_LISTED = 20  # bots named in a log line; the rest are counted


@dataclass
class StopOutcome:
    """What a paced stop did, for the log (and tests)."""

    stopped: int = 0
    players_saved: int | None = 0  # None: the batched save failed or timed out
    abandoned: list[int] = field(default_factory=list)  # bots not stopped cleanly by the deadline
    seconds: float = 0.0


async def stop_runners(
    runners: Sequence[BotRunner],
    *,
    deadline: float,
    concurrency: int = STOP_CONCURRENCY,
    per_bot_timeout: float = 10.0,
    abandon: bool = False,
) -> StopOutcome:
    """Stop `runners` within about `deadline` seconds (see the module's docstring). Never raises.

    `abandon`: the database is out of reach (a worker draining without it): nothing is saved or
    written, the sessions are only closed (`BotRunner.stop(abandon=True)`), the same pace and
    deadline."""
    started = time.monotonic()
    outcome = StopOutcome()
    if not runners:
        return outcome
    for runner in runners:
        runner.begin_stop()  # none reconnects while it waits for its turn
    if abandon:
        outcome.players_saved = None
    else:
        outcome.players_saved, _ = await asyncio.gather(
            save_players(runners, timeout=deadline * _SAVE_SHARE),
            _save_all_identifies(runners, timeout=deadline * _SAVE_SHARE),
        )
    gate = asyncio.Semaphore(concurrency)

    async def stop_one(runner: BotRunner) -> None:
        async with gate:
            await runner.stop(timeout=per_bot_timeout, abandon=abandon)

    tasks = {
        asyncio.create_task(stop_one(runner), name=f"stop-bot-{runner.client_id}"): runner
        for runner in runners
    }
    remaining = max(0.0, deadline - (time.monotonic() - started))
    done, pending = await asyncio.wait(tasks, timeout=remaining)
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            _log.warning("Stopping bot %d failed: %r", tasks[task].client_id, error)
    outcome.stopped = len(done)
    if pending:
        late = [runner for task, runner in tasks.items() if task in pending]  # in the fleet's order
        outcome.abandoned = [runner.client_id for runner in late]
        closed = await _close_sockets_now(late)
        for runner in late:
            runner.abandon()
        await cancel_bounded(list(pending), _ABANDON_GRACE, what="Bots cut off at the shutdown deadline")
        named = ", ".join(str(client_id) for client_id in outcome.abandoned[:_LISTED])
        more = f" and {len(late) - _LISTED} more" if len(late) > _LISTED else ""
        _log.warning(
            "Shutdown deadline (%.0fs) reached: %d of %d bot(s) not stopped cleanly (%s%s); their %d "
            "gateway socket(s) were closed without waiting, their voice connections and Lavalink "
            "nodes were left to the process exit%s",
            deadline,
            len(late),
            len(runners),
            named,
            more,
            closed,
            "" if outcome.players_saved is not None else "; their players were NOT saved (see above)",
        )
    outcome.seconds = time.monotonic() - started
    _log.info("Stopped %d bot(s) in %.1fs (%s players saved in one write)", outcome.stopped, outcome.seconds,
              "no" if outcome.players_saved is None else outcome.players_saved)  # fmt: skip
    return outcome


async def save_players(runners: Sequence[BotRunner], *, timeout: float) -> int | None:
    """Every bot's players in one bulk write (fenced by each bot's lease epoch); returns how many
    were written (None: failed). Also what a draining worker does before its hand-overs."""
    now = asyncio.get_running_loop().time()
    writes: list[SnapshotWrite] = []
    for runner in runners:
        client = runner.client
        if client is not None:
            writes += client.music.snapshots.changes(now, deletions=False)
    try:
        async with asyncio.timeout(timeout):
            await write_snapshots(writes)
    except (TimeoutError, PyMongoError) as exc:
        # Each bot's own stop saves its players again (the keepers know these writes failed).
        _log.warning("Saving every player at once failed (%r); each bot saves its own as it stops", exc)
        return None
    return sum(1 for write in writes if write.state is not None)


async def _save_all_identifies(runners: Sequence[BotRunner], *, timeout: float) -> None:
    """The IDENTIFYs still queued (their write failed or is due) of every bot: their books (one
    for a worker's fleet) write them in one bulk write each."""
    books = {id(runner.identify_ledger.book): runner.identify_ledger.book for runner in runners}
    await asyncio.gather(*(book.close(timeout) for book in books.values()))


async def _close_sockets_now(runners: Sequence[BotRunner]) -> int:
    """Send a close frame on every gateway socket of `runners` (a clean logout for Discord) and
    wait at most `_ABANDON_GRACE` for the handshakes. Returns how many sockets were closing."""
    closes = [
        asyncio.ensure_future(socket.close(code=1000))
        for runner in runners
        if runner.client is not None
        for socket in runner.client.gateway_sockets()
    ]
    if closes:
        _, still = await asyncio.wait(closes, timeout=_ABANDON_GRACE)
        for close in still:
            close.cancel()
    return len(closes)
