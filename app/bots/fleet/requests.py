"""Forwarded requests between workers: a collection and a change stream, not HTTP (docs/SCALING.md,
"Forwarding").

The receiving worker inserts the raw interaction into `fleet_requests`, naming the worker that
runs the acting bot, and waits `CLAIM_WINDOW`; that worker follows a change stream filtered to
its process's ids, claims the request (pending → taken) and runs it on the bot. Whichever of "taken"
and the receiver's "cancelled" lands first decides, atomically, who answers the interaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pymongo.errors import OperationFailure, PyMongoError

from app.bots.backoff import Backoff
from app.db import routing as routing_db
from app.db.models import FleetRequest
from app.shutdown import cancel_bounded

_log = logging.getLogger(__name__)

# How long the receiving worker waits for the owner to claim before answering itself. Discord
# wants a first answer within 3 s: the owner then still has about 1.5 s (it defers if needed).
CLAIM_WINDOW = 1.5
_UNSUPPORTED_CODES = {40573, 40324, 303}
# Without change streams, pending requests are read this often (well inside CLAIM_WINDOW).
POLL_INTERVAL = 0.25
# Longest an idle getMore waits on the server: a request arrives at once whatever this is; it sets
# how often an idle stream makes a round trip (about 0.9 ms of CPU each in PyMongo). A stop with
# the database reachable cancels the parked read (`stop(patience=0)`).
STREAM_AWAIT_MS = 10_000


class RequestRelay:
    def __init__(
        self,
        *,
        me: Callable[[], str],
        can_deliver: Callable[[int], bool],
        deliver: Callable[[FleetRequest], None],
    ) -> None:
        """`can_deliver(bot)`: the bot runs here and can take an interaction now (checked before
        claiming, so a request for a bot this worker just lost is left to the receiver);
        `deliver(request)`: run it on its `target_bot`."""
        self._me = me
        self._can_deliver = can_deliver
        self._deliver = deliver
        self._task: asyncio.Task[None] | None = None
        self._claims: set[asyncio.Task[None]] = set()
        # Checked by the loops too: a cancellation can be lost inside the driver's server selection
        # while the database is down (asyncio.wait_for on Python 3.11), and the loop would go on.
        self._stopping = False
        self._stopped = asyncio.Event()
        self.mode: Literal["change_stream", "poll"] | None = None

    # -- the receiving side -------------------------------------------------------------------------

    async def forward(
        self,
        *,
        target_bot: int,
        target_worker: str,
        payload: Mapping[str, Any],
        deferred: bool = False,
        public_defer: bool = False,
    ) -> bool:
        """Hand the interaction to `target_worker`. True: it took it and answers; False: nobody
        claimed it within CLAIM_WINDOW (now cancelled): the caller answers the user."""
        request_id = await routing_db.submit_request(
            target_bot=target_bot,
            target_worker=target_worker,
            payload=payload,
            deferred=deferred,
            public_defer=public_defer,
        )
        # The owner may take it at any moment of the window; only the final CAS decides, so there
        # is nothing to watch meanwhile.
        await asyncio.sleep(CLAIM_WINDOW)
        if await routing_db.cancel_request(request_id):
            _log.warning("A request for bot %d was not claimed by worker %s within %.1fs; answered here",
                         target_bot, target_worker, CLAIM_WINDOW)  # fmt: skip
            return False
        return True

    # -- the owner's side ---------------------------------------------------------------------------

    def start(self, *, mode: str = "auto") -> None:
        self._stopping = False
        self._stopped.clear()
        self._task = asyncio.create_task(self._run(poll=mode == "poll"), name="fleet-requests")

    async def stop(self, *, patience: float = 0.0) -> None:
        """`patience`: as `FleetView.stop` (let the loop end by itself before cancelling it; 0 with
        the database reachable: a parked getMore ends at once when cancelled)."""
        self._stopping = True
        self._stopped.set()
        if self._task is not None and not self._task.done() and patience > 0:
            await asyncio.wait({self._task}, timeout=patience)
        await cancel_bounded([self._task, *self._claims], 1.0, what="Forwarded requests")
        self._task = None

    async def _run(self, *, poll: bool) -> None:
        if not poll:
            await self._follow()
        self.mode = "poll"
        while not self._stopping:
            try:
                for request in await routing_db.pending_requests(self._me()):
                    self._claim(request.id, request.target_bot)
            except PyMongoError as exc:
                _log.debug("Reading forwarded requests failed (%s)", exc)
            await self._sleep(POLL_INTERVAL)

    async def _follow(self) -> None:
        """Returns only when the database has no change streams (then the caller polls)."""
        backoff = Backoff(initial=0.5, maximum=10.0)
        collection = FleetRequest.get_pymongo_collection()
        while not self._stopping:
            # Every id this process registers under ("host:pid:<random>"): a re-registration
            # (after being reaped) changes only the suffix, so the stream need not be reopened
            # to follow it; a request for an id no longer ours is left to its receiver.
            process = re.escape(self._me().rsplit(":", 1)[0] + ":")
            pipeline = [{"$match": {"operationType": "insert",
                                    "fullDocument.target_worker": {"$regex": f"^{process}"}}}]  # fmt: skip
            try:
                async with await collection.watch(pipeline, max_await_time_ms=STREAM_AWAIT_MS) as stream:
                    self.mode = "change_stream"
                    backoff.reset()
                    # Requests inserted while no stream was open (a stale one fails its claim).
                    for request in await routing_db.pending_requests(self._me()):
                        self._claim(request.id, request.target_bot)
                    # `alive`: a dropped collection invalidates the stream, whose try_next then
                    # returns None at once, forever (a loop that never yields); reopen instead.
                    while not self._stopping and stream.alive:
                        change = await stream.try_next()
                        if change is not None and change.get("operationType") == "insert":
                            self._claim_inserted(change["fullDocument"])
                    invalidated = not stream.alive
                if invalidated and not self._stopping:
                    await self._pause(backoff, "the stream was invalidated (collection dropped or renamed)")
            except OperationFailure as exc:
                if exc.code in _UNSUPPORTED_CODES or "replica set" in str(exc).lower():
                    _log.warning("No change streams (%s): polling forwarded requests every %.2fs",
                                 exc, POLL_INTERVAL)  # fmt: skip
                    return
                await self._pause(backoff, exc)
            except PyMongoError as exc:
                await self._pause(backoff, exc)

    async def _pause(self, backoff: Backoff, exc: BaseException | str) -> None:
        delay = backoff.next_delay()
        _log.debug("Change stream on fleet_requests interrupted (%s); reopening in %.1fs", exc, delay)
        await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        """Sleep, or less if the relay stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    def _claim_inserted(self, document: Mapping[str, Any]) -> None:
        if document.get("target_worker") != self._me():
            _log.debug("Forwarded request %r names an earlier id of this worker; left to its receiver",
                       document.get("_id"))  # fmt: skip
            return
        try:
            request_id, target_bot = document["_id"], int(document["target_bot"])
        except (KeyError, TypeError, ValueError):
            _log.warning("Ignored a malformed forwarded request (_id %r)", document.get("_id"))
            return
        self._claim(request_id, target_bot)

    def _claim(self, request_id: Any, target_bot: int) -> None:
        if not self._can_deliver(target_bot):
            return  # not (or no longer) runnable here: the receiver cancels and answers
        task = asyncio.create_task(self._take(request_id, target_bot), name=f"claim-request-{target_bot}")
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _take(self, request_id: Any, target_bot: int) -> None:
        try:
            request = await routing_db.claim_request(request_id, worker=self._me())
        except PyMongoError as exc:
            _log.warning("Claiming a request for bot %d failed (%s); its receiver answers", target_bot, exc)
            return
        if request is None:
            return  # cancelled first (too late), or already taken
        try:
            self._deliver(request)
        except Exception:
            _log.exception("Bot %d: a forwarded interaction could not be run", target_bot)
