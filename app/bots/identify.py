"""When a bot may IDENTIFY: Discord's daily budget, and pacing after sessions that did not hold.

Every IDENTIFY of a bot passes through `MusicBotClient.before_identify_hook`, whichever loop
asked for it (discord.py's own reconnect after an invalidated session, or the runner's fresh
client after an error), so that hook is where the retry policy lives:

* `IdentifyPacer` spaces IDENTIFYs by Discord's 5 s and, when the session started by the
  previous IDENTIFY did not hold for `BOT_STABLE_AFTER` seconds, by an exponential backoff. A
  READY alone resets nothing: a session that dies two seconds after READY is a crash loop.
  A sharded bot sends one IDENTIFY per shard: the spacing is the bot's (Discord's
  `max_concurrency` 1 puts every shard in one bucket), the backoff follows each shard's own
  session, so the shards of one launch are spaced, not backed off.
* `IdentifyLedger` counts IDENTIFYs of the last 24 h (every shard's) and decides from memory:
  the worker owns its bots, so nothing else spends their budget meanwhile. Its log is loaded once
  (read for the whole fleet at its start, else in the next batched read) and every IDENTIFY is
  written to it BEFORE it is sent, so that neither a restart nor a crash loop forgets one.
* `IdentifyLogBook` does the reads and writes of every bot of the worker: the IDENTIFYs of a short
  window (`RECORD_WINDOW`) go in ONE bulk write, the logs asked for in ONE query, one operation in
  flight at a time (group commit). A start of 1,000 bots costs a few dozen database operations,
  not 1,000, and a slow database never gets 1,000 queued. A database that is down or hangs holds
  an IDENTIFY back at most `RECORD_WAIT`; its record stays queued and is written once it answers.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

import pymongo
from pymongo.errors import PyMongoError

from app.bots.backoff import Backoff
from app.bots.errors import IdentifyBudgetExceeded
from app.db import queries
from app.db.models import utcnow
from app.metrics import IDENTIFIES
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

DISCORD_DAILY_IDENTIFY_LIMIT = 1000
WINDOW = timedelta(hours=24)
# One attempt to read or write the log; a hung database fails the attempt, which is retried.
_ATTEMPT_TIMEOUT = 5.0
# IDENTIFYs (of every bot) collected before they are written in one bulk write.
RECORD_WINDOW = 0.25
# The longest an IDENTIFY waits for its record to be written (or its bot's log to be read) before
# it is decided from memory and sent; the record stays queued. (The wait a start had before.)
RECORD_WAIT = 2.0


def identify_budget(share: float) -> int:
    """IDENTIFYs a bot may spend in 24 h with IDENTIFY_BUDGET_SHARE `share`."""
    return int(DISCORD_DAILY_IDENTIFY_LIMIT * share)


class IdentifyPacer:
    """How long the next IDENTIFY of one bot must wait.

    After sessions that held (or before the first IDENTIFY): only Discord's spacing since the
    bot's previous IDENTIFY, whichever shard sent it. When the IDENTIFY replaces a session that
    did not hold: the next backoff delay too (doubling, jittered, up to its maximum), counted
    from when the wait is first asked for.

    `shard` is the shard that identifies; None is the bot as a whole: the one connection of an
    unsharded bot, or a fresh client that starts every shard of a sharded one (one backoff for
    the round, then the shards are only spaced).
    """

    def __init__(
        self, *, backoff: Backoff, spacing: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._backoff = backoff
        self._spacing = spacing
        self._clock = clock
        self._identified_at: float | None = None
        # Shards whose session (started by their last IDENTIFY) has not held yet, and when each
        # got its READY.
        self._unheld: set[int | None] = set()
        self._ready_at: dict[int | None, float] = {}
        self._next_at: float | None = None
        self.short_sessions = 0  # sessions in a row that ended before they held
        self.last_session_length: float | None = None  # after its READY; None: it never got one
        self.backing_off = False  # the current wait includes a backoff (not only the spacing)

    def delay(self, shard: int | None = None) -> float:
        """Seconds until the next IDENTIFY (of `shard`) may be sent (0: now)."""
        if self._identified_at is None:
            return 0.0
        now = self._clock()
        if self._next_at is None:
            earliest = self._identified_at + self._spacing
            ended = set(self._unheld) if shard is None else self._unheld & {shard}
            self.backing_off = bool(ended)
            if ended:
                self.short_sessions += 1
                lengths = [now - self._ready_at[s] for s in ended if s in self._ready_at]
                self.last_session_length = min(lengths) if len(lengths) == len(ended) else None
                earliest = max(earliest, now + self._backoff.next_delay())
                self._unheld -= ended  # paid for: the other shards of this round only space
            self._next_at = earliest
        return max(0.0, self._next_at - now)

    def identified(self, shard: int | None = None) -> None:
        """An IDENTIFY (of `shard`) is being sent now."""
        self._identified_at = self._clock()
        self._unheld.add(shard)
        self._ready_at.pop(shard, None)
        self._next_at = None

    def ready(self, shard: int | None = None) -> None:
        self._ready_at[shard] = self._clock()

    def held(self) -> None:
        """The bot's sessions lasted: forget earlier failures."""
        self._unheld.clear()
        self._ready_at.clear()
        self._next_at = None
        self.short_sessions = 0
        self._backoff.reset()


class IdentifyLogBook:
    """The IDENTIFY logs of a worker's bots: records written and logs read in batches.

    `record` queues an IDENTIFY and waits (bounded) for the bulk write that carries it; `load`
    asks for a bot's log, read with the others asked for in the same window. One task writes and
    reads, one operation at a time; a failure keeps what it carried queued for the next attempt
    (backing off), so a database that was down gets every record once it answers."""

    def __init__(self, *, window: float = RECORD_WINDOW, wait: float = RECORD_WAIT) -> None:
        self._window = window
        self.wait = wait
        self._queued: dict[int, list[datetime]] = {}
        self._loads: dict[int, asyncio.Future[list[datetime]]] = {}
        self._next: asyncio.Future[bool] | None = None  # the write the queued records go in
        # the write under way and the bots whose records it carries
        self._writing: tuple[asyncio.Future[bool], frozenset[int]] | None = None
        self._wanted = asyncio.Event()
        # Someone waits for the queued records now (a hand-over, before releasing the leases):
        # the writer tries again at once rather than at the end of its backoff.
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(initial=0.5, maximum=30.0)
        self.writes = 0  # bulk writes done (tests count them)

    async def record(self, client_id: int, at: datetime) -> bool:
        """Queue one IDENTIFY of the bot; wait at most `wait` for its write. True: written."""
        self._queued.setdefault(client_id, []).append(at)
        written = self._next_write()
        done, _ = await asyncio.wait({written}, timeout=self.wait)
        return bool(done) and written.result()

    async def written(self, client_id: int) -> bool:
        """Wait (at most `wait`) until the IDENTIFYs of the bot queued or being written are in its
        log: a worker handing the bot over waits for this before it releases the lease, so the
        next owner, which reads the log before its first IDENTIFY, counts them. True: written."""
        if client_id in self._queued:
            future = self._next_write()
        elif self._writing is not None and client_id in self._writing[1]:
            future = self._writing[0]
        else:
            return True
        done, _ = await asyncio.wait({future}, timeout=self.wait)
        return bool(done) and future.result()

    async def all_written(self, client_ids: Collection[int]) -> list[int]:
        """`written` for many bots with ONE bounded wait (at most `wait`): a hand-over of many
        bots waits once per released batch, not once per bot. Returns the bots whose IDENTIFYs
        are still not in their logs."""
        pending: dict[int, asyncio.Future[bool]] = {}
        for client_id in client_ids:
            if client_id in self._queued:
                pending[client_id] = self._next_write()
            elif self._writing is not None and client_id in self._writing[1]:
                pending[client_id] = self._writing[0]
        if not pending:
            return []
        self._urgent.set()
        await asyncio.wait(set(pending.values()), timeout=self.wait)
        return [
            client_id
            for client_id, future in pending.items()
            if not (future.done() and not future.cancelled() and future.result())
        ]

    def load(self, client_id: int) -> asyncio.Future[list[datetime]]:
        """The bot's log of the last 24 h, read in the next batch (the same future until read)."""
        future = self._loads.get(client_id)
        if future is None:
            future = self._loads[client_id] = asyncio.get_running_loop().create_future()
            self._next_write()
        return future

    def _next_write(self) -> asyncio.Future[bool]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_and_read_logs(), name="identify-log-book")
        self._wanted.set()
        return self._next

    async def _write_and_read_logs(self) -> None:  # the name the benchmarks' profiles look for
        while True:
            await self._wanted.wait()
            await asyncio.sleep(self._window)  # what arrives meanwhile goes in the same operation
            self._wanted.clear()
            if not await self._flush():
                self._wanted.set()
                self._urgent.clear()
                # After failures the backoff reaches 30 s: a hand-over waiting (bounded) for these
                # records would only ever see its wait run out. It cuts the backoff short.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._backoff.next_delay()):
                        await self._urgent.wait()

    async def _flush(self) -> bool:
        """Write every queued record, then read every log asked for; False: the database failed
        (what was not done is queued again)."""
        batch, self._queued = self._queued, {}
        written, self._next = self._next, None
        loads = [client_id for client_id, future in self._loads.items() if not future.done()]
        if written is not None:
            self._writing = (written, frozenset(batch))
        try:
            with pymongo.timeout(_ATTEMPT_TIMEOUT):
                if batch:
                    # Retried after a timeout the server had applied anyway: harmless, the write
                    # skips entries already logged.
                    await queries.record_identifies_of_bots(batch)
                    self.writes += 1
        except PyMongoError as exc:
            self._writing = None
            for client_id, timestamps in batch.items():
                self._queued[client_id] = [*timestamps, *self._queued.get(client_id, [])]
            if written is not None:
                written.set_result(False)
            _log.warning("IDENTIFYs of %d bot(s) not written to their logs (%s); retrying", len(batch), exc)
            return False
        self._writing = None
        if written is not None:
            written.set_result(True)
        if loads:
            try:
                with pymongo.timeout(_ATTEMPT_TIMEOUT):
                    logs = await queries.identify_logs(loads)
            except PyMongoError as exc:
                _log.warning("IDENTIFY logs of %d bot(s) not read (%s); retrying", len(loads), exc)
                return False
            for client_id, timestamps in logs.items():
                future = self._loads.pop(client_id, None)
                if future is not None and not future.done():
                    future.set_result(timestamps)
        self._backoff.reset()
        return True

    async def close(self, timeout: float) -> None:
        """Write what is queued (bounded: a database that is down loses at most these) and stop
        the task; a later `record` or `load` starts it again (a fleet's stop closes the book
        early, and a bot still claiming then is not lost)."""
        task, self._task = self._task, None
        if task is not None:
            # Bounded: a database operation cancelled mid-way may take long to give up.
            await cancel_bounded([task], min(timeout, 1.0), what="The IDENTIFY log writer")
        self._loads.clear()
        if not self._queued:
            return
        queued = sum(len(batch) for batch in self._queued.values())
        try:
            async with asyncio.timeout(timeout):
                await queries.record_identifies_of_bots(self._queued)
        except (TimeoutError, PyMongoError) as exc:
            _log.warning("%d IDENTIFY(s) of %d bot(s) not written to their logs (%r)",
                         queued, len(self._queued), exc)  # fmt: skip
        self._queued.clear()

    def abandon(self) -> None:
        """Stop without writing (the process is exiting)."""
        if self._task is not None:
            self._task.cancel()


class IdentifyLedger:
    """One bot's IDENTIFYs of the last 24 h, decided from memory; each is written to the bot's log
    (in a batch of the worker's `IdentifyLogBook`) before it is sent."""

    def __init__(
        self,
        client_id: int,
        *,
        budget_share: float,
        book: IdentifyLogBook | None = None,
        log: list[datetime] | None = None,
    ) -> None:
        self.client_id = client_id
        self.budget_share = budget_share
        self.budget = identify_budget(budget_share)
        self._own_book = book is None  # a bot run on its own (tests): its book is its own
        self.book = book if book is not None else IdentifyLogBook()
        self._started_at = _ms(utcnow())
        self._earlier: list[datetime] = []  # logged before this ledger started (loaded)
        self._mine: list[datetime] = []  # made through this ledger
        self.loaded = asyncio.Event()  # the persisted log is known
        self._claiming = asyncio.Lock()  # one claim at a time (the shards of one bot)
        if log is not None:  # read for the whole fleet at its start
            self._loaded(log)

    def count(self, *, now: datetime | None = None) -> int:
        """IDENTIFYs of the 24 h before `now` (default: now). Both lists are kept sorted: a
        bisection each, so /metrics can ask every bot at every scrape."""
        since = (now or utcnow()) - WINDOW
        return (
            len(self._earlier) - bisect.bisect_left(self._earlier, since)
            + len(self._mine) - bisect.bisect_left(self._mine, since)
        )  # fmt: skip

    def check(self, needed: int = 1) -> None:
        """Raise IdentifyBudgetExceeded when `needed` more IDENTIFYs (one per shard) would pass
        the budget, as far as memory knows."""
        count = self.count()
        if count + needed > self.budget:
            raise IdentifyBudgetExceeded(
                f"{count} IDENTIFYs in the last 24 h reached the budget of {self.budget} "
                f"({self.budget_share:.0%} of Discord's {DISCORD_DAILY_IDENTIFY_LIMIT}/day); stopped so "
                "Discord does not reset the token. Fix the cause, then restart the bot."
            )

    async def claim(self) -> None:
        """An IDENTIFY is about to be sent: check the budget and count it, or raise
        IdentifyBudgetExceeded. Waits (bounded) for the bot's log when it is not known yet, and
        for the write of this IDENTIFY to it."""
        async with self._claiming:
            if not self.loaded.is_set():
                await self._load()
            self.check()
            now = _ms(utcnow())
            if self._mine and now <= self._mine[-1]:
                # Distinct entries (the log's writes skip one already logged), in order even if
                # the wall clock stepped back.
                now = self._mine[-1] + timedelta(milliseconds=1)
            since = now - WINDOW
            self._mine = [at for at in self._mine if at >= since]
            self._mine.append(now)
            IDENTIFIES.inc()
            if not await self.book.record(self.client_id, now):
                _log.warning("Bot %d: its IDENTIFY could not be written to its log in %.0fs; sent anyway "
                             "(counted in memory, written when the database answers)",
                             self.client_id, self.book.wait)  # fmt: skip

    async def _load(self) -> None:
        future = self.book.load(self.client_id)
        if not future.done():
            future.add_done_callback(lambda done: None if done.cancelled() else self._loaded(done.result()))
            await asyncio.wait({future}, timeout=self.book.wait)
        if not self.loaded.is_set():
            _log.warning("Bot %d: its IDENTIFY log could not be read in %.0fs; counting from memory "
                         "until it is", self.client_id, self.book.wait)  # fmt: skip

    def _loaded(self, log: list[datetime]) -> None:
        if self.loaded.is_set():
            return
        # What this ledger counted itself (and wrote) is in `_mine` already.
        self._earlier = sorted(at for at in map(_aware, log) if at < self._started_at)
        self.loaded.set()
        if self._earlier:
            _log.info("Bot %d: %d IDENTIFY(s) in the last 24 h before this start",
                      self.client_id, len(self._earlier))  # fmt: skip

    async def close(self, timeout: float) -> None:
        """A bot run on its own writes what is queued; a fleet's bots leave that to the book."""
        if self._own_book:
            await self.book.close(timeout)

    def abandon(self) -> None:
        if self._own_book:
            self.book.abandon()


def _ms(at: datetime) -> datetime:
    """BSON dates keep milliseconds: compare like with like."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
