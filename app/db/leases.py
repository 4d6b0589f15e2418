"""The fleet's atomic operations on `workers` and `bot_leases` (docs/SCALING.md).

Every change of ownership is one conditional update that names what it expects to find (the
owner, the epoch, the heartbeat counter it saw), so two workers racing for the same document
end with exactly one winner. Nothing here compares a timestamp written by another host.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from app.db.models import BotLease, LeaseStatus, WorkerRecord, WorkerState

_DUPLICATE_KEY = 11000
# Ids per `$in` of a batch operation: SecantusDB's cost grows with the square of the list, and
# smaller batches also let contenders interleave. 2,000 claims: 13 s in one list, < 1 s in 100s.
BATCH = 100


def _batches(client_ids: Sequence[int]) -> list[list[int]]:
    ids = list(client_ids)
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


WorkersCollection = AsyncCollection[dict[str, Any]]
LeasesCollection = AsyncCollection[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FleetCollections:
    """`workers` and `bot_leases` through a client of their own. The heartbeat, the reads that
    feed the observer and the writes of a hand-over go through it: a thousand bots starting or
    stopping can fill the main client's pool for seconds, and a heartbeat queued behind them past
    the renew deadline stops every bot. None: Beanie's (the main client)."""

    workers: WorkersCollection | None = None
    leases: LeasesCollection | None = None

    @classmethod
    def on(cls, database: AsyncDatabase[dict[str, Any]]) -> FleetCollections:
        return cls(database[WorkerRecord.Settings.name], database[BotLease.Settings.name])


def _workers(collection: WorkersCollection | None) -> WorkersCollection:
    return collection if collection is not None else WorkerRecord.get_pymongo_collection()


def _leases(collection: LeasesCollection | None) -> LeasesCollection:
    return collection if collection is not None else BotLease.get_pymongo_collection()


# -- workers ------------------------------------------------------------------------------------


async def register_worker(
    worker_id: str,
    *,
    address: str,
    host: str,
    pid: int,
    capacity: int | None,
    collection: WorkersCollection | None = None,
) -> None:
    """Insert this worker's document; `started_at` and `heartbeat_at` are the server's time."""
    await _workers(collection).update_one(
        {"_id": worker_id},
        {
            "$setOnInsert": {
                "address": address,
                "host": host,
                "pid": pid,
                "heartbeat": 0,
                "capacity": capacity,
                "state": WorkerState.ACTIVE.value,
                "bots": 0,
                "lavalink_connected": 0,
                "lavalink_total": 0,
            },
            "$currentDate": {"started_at": True, "heartbeat_at": True},
        },
        upsert=True,
    )


async def heartbeat(
    worker_id: str, *, bots: int, lavalink: tuple[int, int], collection: WorkersCollection | None = None
) -> bool:
    """The one write per interval that renews every lease this worker holds. False: the document
    is gone (another worker observed this one dead and reaped it)."""
    result = await _workers(collection).update_one(
        {"_id": worker_id},
        {
            "$inc": {"heartbeat": 1},
            "$set": {"bots": bots, "lavalink_connected": lavalink[0], "lavalink_total": lavalink[1]},
            "$currentDate": {"heartbeat_at": True},
        },
    )
    return result.matched_count == 1


async def set_worker_state(
    worker_id: str, state: WorkerState, *, collection: WorkersCollection | None = None
) -> bool:
    result = await _workers(collection).update_one({"_id": worker_id}, {"$set": {"state": state.value}})
    return result.matched_count == 1


async def remove_worker(worker_id: str, *, collection: WorkersCollection | None = None) -> None:
    """A clean exit: the worker has stopped and released every bot it held."""
    await _workers(collection).delete_one({"_id": worker_id})


async def reap_worker(worker_id: str, *, heartbeat: int) -> bool:
    """Delete a worker observed dead, only if its counter is still the one that stood still: a
    heartbeat that landed meanwhile makes this miss. True: reaped (its leases are orphans now)."""
    result = await WorkerRecord.get_pymongo_collection().delete_one(
        {"_id": worker_id, "heartbeat": heartbeat}
    )
    return result.deleted_count == 1


async def worker_exists(worker_id: str) -> bool:
    return await WorkerRecord.get_pymongo_collection().count_documents({"_id": worker_id}, limit=1) > 0


async def all_workers(collection: WorkersCollection | None = None) -> list[WorkerRecord]:
    cursor = _workers(collection).find({})
    return [WorkerRecord.model_validate(document) async for document in cursor]


# -- bot leases -----------------------------------------------------------------------------------


async def all_leases() -> list[BotLease]:
    cursor = BotLease.get_pymongo_collection().find({})
    return [BotLease.model_validate(document) async for document in cursor]


async def get_lease(client_id: int) -> BotLease | None:
    document = await BotLease.get_pymongo_collection().find_one({"_id": client_id})
    return None if document is None else BotLease.model_validate(document)


async def leases_owned_by(worker_id: str, client_ids: Sequence[int]) -> list[BotLease]:
    """Which of these leases name the worker now (read from the database, not a mirror)."""
    found: list[BotLease] = []
    for batch in _batches(client_ids):
        cursor = BotLease.get_pymongo_collection().find({"_id": {"$in": batch}, "owner": worker_id})
        found += [BotLease.model_validate(document) async for document in cursor]
    return found


async def ensure_leases(client_ids: Collection[int]) -> int:
    """Create a free lease for each bot that has none (any worker may; duplicates are ignored).
    Returns how many were created."""
    if not client_ids:
        return 0
    documents = [{"_id": client_id, "owner": None, "epoch": 0, "restarts": 0} for client_id in client_ids]
    try:
        result = await BotLease.get_pymongo_collection().insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(result.inserted_ids)


async def claim_free(worker_id: str, client_ids: Sequence[int]) -> dict[int, BotLease]:
    """Take the free leases among `client_ids`: each is claimed only if it has no owner, so a
    race with another worker gives each lease to exactly one of them. Returns the leases won
    (with their new epoch)."""
    collection = BotLease.get_pymongo_collection()
    for batch in _batches(client_ids):
        await collection.update_many(
            {"_id": {"$in": batch}, "owner": None},
            {
                "$set": {"owner": worker_id, "status": None},
                "$inc": {"epoch": 1},
                "$currentDate": {"acquired_at": True},
            },
        )
    # Only this worker ever releases what it holds (or reaps it after it was observed dead), so
    # what names it now is what it won just now.
    return {lease.id: lease for lease in await leases_owned_by(worker_id, client_ids)}


async def release(client_id: int, *, worker_id: str, epoch: int) -> bool:
    """Give the lease back (its bot is stopped): anyone may claim it at once."""
    result = await BotLease.get_pymongo_collection().update_one(
        {"_id": client_id, "owner": worker_id, "epoch": epoch}, {"$set": {"owner": None, "status": None}}
    )
    return result.modified_count == 1


async def release_many(
    client_ids: Sequence[int], *, worker_id: str, collection: LeasesCollection | None = None
) -> int:
    """Give back many leases at once (their bots are stopped): one write for a whole batch of a
    hand-over. Only leases naming this worker are touched; since only it releases what names
    it, that is the epoch it holds."""
    released = 0
    for batch in _batches(client_ids):
        result = await _leases(collection).update_many(
            {"_id": {"$in": batch}, "owner": worker_id}, {"$set": {"owner": None, "status": None}}
        )
        released += result.modified_count
    return released


async def release_orphans(worker_id: str) -> int:
    """Free every lease of a worker whose document is gone (reaped, or it exited without being
    able to release). Safe only once that is checked: its ids are never reused."""
    result = await BotLease.get_pymongo_collection().update_many(
        {"owner": worker_id}, {"$set": {"owner": None, "status": None}}
    )
    return result.modified_count


async def delete_lease(client_id: int, *, worker_id: str | None, epoch: int | None = None) -> bool:
    """Remove the lease of a deleted bot: by its owner (with its epoch) or, when free, by anyone."""
    flt: dict[str, Any] = {"_id": client_id, "owner": worker_id}
    if epoch is not None:
        flt["epoch"] = epoch
    result = await BotLease.get_pymongo_collection().delete_one(flt)
    return result.deleted_count == 1


async def request_restart(client_id: int) -> bool:
    """Ask the bot's owner, whichever worker it is, to restart it. False: no such lease."""
    result = await BotLease.get_pymongo_collection().update_one({"_id": client_id}, {"$inc": {"restarts": 1}})
    return result.matched_count == 1


async def publish_statuses(
    worker_id: str, updates: Iterable[tuple[int, int, LeaseStatus]]
) -> tuple[int, int]:
    """Write the status of bots this worker owns, each fenced by (owner, epoch). Returns
    (written, fenced): a fenced one means the lease changed hands."""
    operations = [
        UpdateOne(
            {"_id": client_id, "owner": worker_id, "epoch": epoch},
            {"$set": {"status": status.model_dump(mode="python")}},
        )
        for client_id, epoch, status in updates
    ]
    if not operations:
        return 0, 0
    result = await BotLease.get_pymongo_collection().bulk_write(operations, ordered=False)
    return result.matched_count, len(operations) - result.matched_count
