"""Hot reload: the fleet follows the `music_bots` collection while it runs.

A change stream when the database supports one (a replica set: production MongoDB, SecantusDB),
polling every `RELOAD_POLL_INTERVAL` seconds when it does not (a standalone `mongod`). Either
way each change goes through `BotManager.sync_bot`, which starts, stops or restarts that one bot
and nothing else. A database outage pauses reloading, never the bots.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

from beanie import PydanticObjectId
from pydantic import ValidationError
from pymongo.errors import OperationFailure, PyMongoError

from app.bots.backoff import Backoff
from app.db.models import MusicBot

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

ReloadMode = Literal["auto", "change_stream", "poll"]

# Only changes that can matter to a running bot wake the manager: not the guild counts that
# every bot writes on each guild sync.
_RELEVANT = [
    {
        "$match": {
            "$or": [
                {"operationType": {"$in": ["insert", "replace", "delete", "drop", "invalidate"]}},
                {"updateDescription.updatedFields.enabled": {"$exists": True}},
                {"updateDescription.updatedFields.name": {"$exists": True}},
                {"updateDescription.updatedFields.token_fingerprint": {"$exists": True}},
                {"updateDescription.updatedFields.shard_count": {"$exists": True}},
            ]
        }
    }
]
# Fields of a bot's record its own guild sync writes while it runs: they never call for a sync.
_WRITTEN_BY_THE_BOT = {"guild_count", "user_count", "updated_at"}
_UNSUPPORTED_CODES = {40573, 40324, 303}
# Longest an idle change-stream getMore waits on the server. A change is delivered at once
# whatever this is; it only sets how often an idle stream makes a round trip, each about 0.9 ms
# of CPU in PyMongo (at the server's default, 1 s, about 0.1% of a core for nothing). The stop
# cancels the read, so it does not wait for this either.
AWAIT_MS = 10_000
STOP_TIMEOUT = 1.0  # change streams need a replica set / are not supported


class ChangeStreamsUnsupported(Exception):
    pass


class FleetWatcher:
    def __init__(
        self, manager: BotManager, *, mode: ReloadMode = "auto", poll_interval: float = 10.0
    ) -> None:
        self._manager = manager
        self._mode = mode
        self._poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._client_ids: dict[PydanticObjectId, int] = {}
        self.active_mode: Literal["change_stream", "poll"] | None = None
        self.watching = asyncio.Event()  # set once changes are being followed
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fleet-watcher")

    async def stop(self) -> None:
        """Stop following changes. Bounded: pymongo cannot always abort a change-stream getMore
        the server holds open; closing the database client afterwards ends that read."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=STOP_TIMEOUT)
            if not done:
                _log.debug("The change stream read outlived the watcher; the client close ends it")

    async def _run(self) -> None:
        if self._mode in ("auto", "change_stream"):
            try:
                await self._follow_change_stream()
                return
            except ChangeStreamsUnsupported as exc:
                _log.warning("Change streams are not available (%s): polling music_bots every %.0fs instead",
                             exc, self._poll_interval)  # fmt: skip
        await self._poll_forever()

    async def _follow_change_stream(self) -> None:
        collection = MusicBot.get_pymongo_collection()
        resume_token: Any = None
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            try:
                stream = await collection.watch(
                    _RELEVANT,
                    full_document="updateLookup",
                    resume_after=resume_token,
                    max_await_time_ms=AWAIT_MS,
                )
                async with stream:
                    self.active_mode = "change_stream"
                    await self.reconcile_all()  # catch up on what changed before the stream opened
                    self.watching.set()
                    backoff.reset()
                    async for change in stream:
                        resume_token = stream.resume_token
                        await self._apply(change)
                # The stream ended: invalidated (music_bots dropped or renamed; _apply has
                # reconciled). Its last token cannot be resumed after: open a new one, after a pause.
                resume_token = None
                delay = backoff.next_delay()
                _log.warning("Change stream on music_bots was invalidated; reopening in %.1fs", delay)
                await asyncio.sleep(delay)
            except OperationFailure as exc:
                if exc.code in _UNSUPPORTED_CODES or "replica set" in str(exc).lower():
                    raise ChangeStreamsUnsupported(str(exc)) from None
                delay = backoff.next_delay()
                _log.warning("Change stream on music_bots failed (%s); reopening in %.1fs", exc, delay)
                resume_token = None  # the token may be what failed: reconcile_all covers the gap
                await asyncio.sleep(delay)
            except PyMongoError as exc:
                delay = backoff.next_delay()
                _log.warning("Change stream on music_bots interrupted (%s); reopening in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _poll_forever(self) -> None:
        self.active_mode = "poll"
        while True:
            try:
                await self.reconcile_all()
                self.watching.set()
            except PyMongoError as exc:
                _log.warning("Polling music_bots failed (%s); the fleet keeps running as it is", exc)
            await asyncio.sleep(self._poll_interval)

    async def _apply(self, change: dict[str, Any]) -> None:
        operation = change.get("operationType")
        if operation in ("drop", "invalidate", "dropDatabase", "rename"):
            await self.reconcile_all()
            return
        document_id = change.get("documentKey", {}).get("_id")
        document = change.get("fullDocument")
        if document is None:  # deleted (or deleted again before the lookup)
            client_id = self._client_ids.pop(document_id, None)
            if client_id is not None:
                await self._sync(client_id)
            return
        try:
            record = MusicBot.model_validate(document)
        except ValidationError as exc:  # written by hand, or by another version: not ours to run
            _log.warning("Ignored a malformed music_bots document (_id %r): %s",
                         document_id, exc.errors(include_url=False, include_input=False))  # fmt: skip
            return
        if record.id is not None:
            self._client_ids[record.id] = record.client_id
        await self._sync(record.client_id)

    async def reconcile_all(self) -> None:
        """Compare every stored bot with the running fleet and fix each difference.

        The collection read here only says which bots to look at: each one is read again under
        its own lock (`sync_bot_from_database`), so a bot deleted or disabled through the API
        while this pass was busy with others cannot come back from this older read.
        """
        records = await MusicBot.find_all().to_list()
        self._client_ids = {r.id: r.client_id for r in records if r.id is not None}
        stored = [r.client_id for r in records]
        # A bot running exactly as read needs nothing (doing nothing cannot undo a concurrent
        # change): no read of its own. At a fleet's start that is every bot: no N reads.
        pending = [r.client_id for r in records if not self._running_as(r)]
        for client_id in [*pending, *sorted(self._manager.known_client_ids() - set(stored))]:
            await self._sync(client_id)

    def _running_as(self, record: MusicBot) -> bool:
        """Nothing to do for this bot: it runs here with this record already, or (not run here:
        another worker's, or its lease still on its way) the manager knows it exactly so, but
        for the counts its own guild sync writes."""

        def same(known: MusicBot | None) -> bool:
            return known is not None and known.model_dump(exclude=_WRITTEN_BY_THE_BOT) == record.model_dump(
                exclude=_WRITTEN_BY_THE_BOT
            )

        runner = self._manager.get_runner(record.client_id)
        if runner is not None:
            return record.enabled and same(runner.record)
        return same(self._manager.record(record.client_id))

    async def _sync(self, client_id: int) -> None:
        try:
            await self._manager.sync_bot_from_database(client_id)
        except Exception:
            _log.exception("Hot reload of bot %d failed; other bots are unaffected", client_id)
