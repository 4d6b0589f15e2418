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
* `IdentifyLedger` counts IDENTIFYs of the last 24 h (every shard's). A bot's first IDENTIFY
  after its start is claimed in the database in ONE atomic round trip that checks the budget
  against the persisted log and logs the IDENTIFY (`queries.claim_identify`): that is the only
  database operation of a bot's start. Its answer loads the log into memory; every later
  IDENTIFY (reconnects) is decided from memory and persisted in the background with retries. A
  database that is down or hangs holds the first IDENTIFY back at most `FIRST_CLAIM_WAIT`
  seconds, then the ledger goes on from memory, and one background write (retried) both
  persists what it counted and loads the log.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pymongo
import stamina
from pymongo.errors import PyMongoError

from app.bots.backoff import Backoff
from app.bots.errors import IdentifyBudgetExceeded
from app.db import queries
from app.db.models import utcnow
from app.metrics import IDENTIFIES

_log = logging.getLogger(__name__)

DISCORD_DAILY_IDENTIFY_LIMIT = 1000
WINDOW = timedelta(hours=24)
# One attempt to read or write the log; a hung database fails the attempt, which is retried.
_ATTEMPT_TIMEOUT = 5.0
# How long a bot's first IDENTIFY waits for its claim in the database before deciding from memory
# (as long as a start used to wait for the log's load). SecantusDB answers findAndModify on an
# existing document at ~150/s on these machines (update_one ~900/s): a 1,000-bot restart there
# falls back to memory for many bots; MongoDB answers it as fast as an update.
FIRST_CLAIM_WAIT = 2.0


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


class IdentifyLedger:
    """One bot's IDENTIFYs of the last 24 h: claimed in the database at the first IDENTIFY (one
    round trip), then decided from memory and persisted in the background."""

    def __init__(
        self, client_id: int, *, budget_share: float, first_claim_wait: float = FIRST_CLAIM_WAIT
    ) -> None:
        self.client_id = client_id
        self.budget_share = budget_share
        self.budget = identify_budget(budget_share)
        self._first_claim_wait = first_claim_wait
        self._started_at = _ms(utcnow())
        self._earlier: list[datetime] = []  # logged before this ledger started (loaded)
        self._mine: list[datetime] = []  # made through this ledger
        self._unsaved: list[datetime] = []
        self._wake = asyncio.Event()
        self.loaded = asyncio.Event()  # the persisted log is known (claimed or loaded)
        self._claiming = asyncio.Lock()  # one claim at a time (the shards of one bot)
        self._task: asyncio.Task[None] | None = None  # loads (if needed) and persists in the background

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
        the budget, as far as memory knows (nothing before the first claim)."""
        count = self.count()
        if count + needed > self.budget:
            raise IdentifyBudgetExceeded(
                f"{count} IDENTIFYs in the last 24 h reached the budget of {self.budget} "
                f"({self.budget_share:.0%} of Discord's {DISCORD_DAILY_IDENTIFY_LIMIT}/day); stopped so "
                "Discord does not reset the token. Fix the cause, then restart the bot."
            )

    async def claim(self) -> None:
        """An IDENTIFY is about to be sent: check the budget and count it, or raise
        IdentifyBudgetExceeded. The first claim asks the database (one round trip, bounded by
        `FIRST_CLAIM_WAIT`); later ones are decided from memory."""
        async with self._claiming:
            if not self.loaded.is_set() and self._task is None and await self._claim_in_database():
                return
            self.check()
            self._record()

    async def _claim_in_database(self) -> bool:
        """True: the database decided (and logged it when allowed). False: it did not answer in
        time; the caller decides from memory and the log is loaded in the background."""
        at = _ms(utcnow())
        try:
            with pymongo.timeout(self._first_claim_wait):
                allowed, logged = await queries.claim_identify(self.client_id, at=at, budget=self.budget)
        except PyMongoError as exc:
            # A claim that timed out after the server applied it is counted twice (here and in
            # the background write): that errs on the side of the token.
            _log.warning(
                "Bot %d: its IDENTIFY budget could not be checked in the database (%s); "
                "counting from memory until it answers",
                self.client_id,
                exc,
            )
            return False
        if allowed:
            logged.remove(at)
            self._mine.append(at)
            IDENTIFIES.inc()
        self._earlier = logged
        self.loaded.set()
        if self._earlier:
            _log.info("Bot %d: %d IDENTIFY(s) in the last 24 h before this start",
                      self.client_id, len(self._earlier))  # fmt: skip
        if not allowed:
            self.check()  # raises: the persisted log is full
        return True

    def _record(self) -> None:
        """Count one IDENTIFY now; it is written to the database in the background."""
        now = _ms(utcnow())
        since = now - WINDOW
        self._mine = [at for at in self._mine if at >= since]
        bisect.insort(self._mine, now)  # sorted even if the wall clock stepped back
        self._unsaved.append(now)
        IDENTIFIES.inc()
        if self._task is None:
            self._task = asyncio.create_task(self._load_and_persist(), name=f"identify-log-{self.client_id}")
        self._wake.set()

    async def close(self, timeout: float) -> None:
        """Write what is still unsaved (bounded: a database that is down loses at most these)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not self._unsaved:
            return
        try:
            await asyncio.wait_for(self._save(attempts=1), timeout)
        except (TimeoutError, PyMongoError) as exc:
            _log.warning("Bot %d: %d IDENTIFY(s) not written to its log (%s)",
                         self.client_id, len(self._unsaved), exc)  # fmt: skip

    def abandon(self) -> None:
        """Stop writing in the background, without waiting (the process is exiting)."""
        if self._task is not None:
            self._task.cancel()

    def take_unsaved(self) -> list[datetime]:
        """The IDENTIFYs not written yet, handed to a caller that writes many bots' at once (a
        fleet's stop); this ledger will not write them."""
        batch, self._unsaved = self._unsaved, []
        return batch

    async def _load_and_persist(self) -> None:  # a name the benchmarks' profiles look for
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._unsaved or not self.loaded.is_set():
                await self._save(attempts=None)

    async def _save(self, *, attempts: int | None) -> None:
        """Write what is unsaved and read the log back in the same round trip (the log is loaded
        by the first that succeeds, when the first claim could not be made)."""
        batch = list(self._unsaved)
        logged: list[datetime] = []
        async for attempt in _retrying(attempts=attempts):
            with attempt, pymongo.timeout(_ATTEMPT_TIMEOUT):
                # A write that timed out after the server applied it is written twice: the log
                # then over-counts, which errs on the side of the token.
                logged = await queries.record_identifies(self.client_id, batch)
        del self._unsaved[: len(batch)]
        if not self.loaded.is_set():
            # What this ledger counted itself is in `_mine` already.
            self._earlier = sorted(_aware(at) for at in logged if _aware(at) < self._started_at)
            self.loaded.set()
            if self._earlier:
                _log.info("Bot %d: %d IDENTIFY(s) in the last 24 h before this start",
                          self.client_id, len(self._earlier))  # fmt: skip


def _retrying(*, attempts: int | None) -> AsyncIterator[stamina.Attempt]:
    """Retry database errors (stamina logs each retry), with backoff up to 30 s; `None`: forever."""
    return aiter(
        stamina.retry_context(
            on=PyMongoError, attempts=attempts, timeout=None, wait_initial=0.5, wait_max=30.0
        )
    )


def _ms(at: datetime) -> datetime:
    """BSON dates keep milliseconds: compare like with like."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
