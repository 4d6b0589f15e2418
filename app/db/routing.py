"""Routing state shared by every worker: voice assignments and forwarded requests.

The one write path for `voice_assignments` (who serves which voice channel, fleet-wide) and
`fleet_requests` (an interaction handed from the worker that received it to the worker that runs
the acting bot). Every change is one atomic operation; see docs/SCALING.md, "Routing across
workers".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.db.models import FleetRequest, RequestStatus, VoiceAssignment, utcnow


class AssignmentFenced(Exception):
    """A newer owner of the bot (a higher lease epoch) wrote its assignment in the guild."""


def _fence(epoch: int | None) -> dict[str, Any]:
    return {} if epoch is None else {"epoch": {"$not": {"$gt": epoch}}}


# -- voice assignments ----------------------------------------------------------------------------


async def take_voice(
    guild_id: int, channel_id: int, bot_id: int, *, worker: str | None, epoch: int | None
) -> int:
    """Assign `channel_id` to `bot_id` before it joins: one upsert keyed by (guild, bot), so a bot
    that moves keeps one row. Returns the bot that holds the channel now: `bot_id` when taken,
    another bot when the unique (guild, channel) index says it got there first.

    Raises AssignmentFenced when the bot's row in the guild was written by a newer lease epoch.
    """
    collection = VoiceAssignment.get_pymongo_collection()
    try:
        await collection.update_one(
            {"guild_id": guild_id, "bot_id": bot_id, **_fence(epoch)},
            {
                "$set": {"channel_id": channel_id, "worker": worker, "epoch": epoch or 0},
                "$currentDate": {"since": True},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        holder = await collection.find_one({"guild_id": guild_id, "channel_id": channel_id}, {"bot_id": 1})
        if holder is not None and holder["bot_id"] != bot_id:
            return int(holder["bot_id"])
        raise AssignmentFenced(f"bot {bot_id} in guild {guild_id}") from None
    return bot_id


async def release_voice(
    guild_id: int, bot_id: int, *, epoch: int | None, channel_id: int | None = None
) -> bool:
    """The bot's player left the guild (or never joined): free its channel. Fenced by epoch; with
    `channel_id`, only that channel's row (a stale holder being cleared)."""
    where: dict[str, Any] = {"guild_id": guild_id, "bot_id": bot_id, **_fence(epoch)}
    if channel_id is not None:
        where["channel_id"] = channel_id
    result = await VoiceAssignment.get_pymongo_collection().delete_one(where)
    return result.deleted_count == 1


async def clean_voice(bot_id: int, *, epoch: int) -> int:
    """The bot's new owner (lease `epoch`) has restored its players: rows an older epoch left
    (players that no longer exist) are deleted. Its own rows carry `epoch` and stay."""
    result = await VoiceAssignment.get_pymongo_collection().delete_many(
        {"bot_id": bot_id, "epoch": {"$lt": epoch}}
    )
    return result.deleted_count


async def bots_with_voice(bot_ids: Collection[int]) -> set[int]:
    """Which of these bots hold voice assignments (of any epoch): one query for the bots a worker
    starts, so that a bot holding none skips its `clean_voice`."""
    ids = await VoiceAssignment.get_pymongo_collection().distinct(
        "bot_id", {"bot_id": {"$in": list(bot_ids)}}
    )
    return set(ids)


async def forget_voice(bot_id: int) -> int:
    """The bot was disabled or deleted: it serves no channel any more."""
    result = await VoiceAssignment.get_pymongo_collection().delete_many({"bot_id": bot_id})
    return result.deleted_count


async def voice_in_guild(guild_id: int) -> list[VoiceAssignment]:
    return await VoiceAssignment.find(VoiceAssignment.guild_id == guild_id).to_list()


async def all_voice() -> list[VoiceAssignment]:
    return await VoiceAssignment.find_all().to_list()


# -- forwarded requests ---------------------------------------------------------------------------


async def submit_request(
    *,
    target_bot: int,
    target_worker: str,
    payload: Mapping[str, Any],
    deferred: bool = False,
    public_defer: bool = False,
) -> ObjectId:
    request = FleetRequest(
        target_bot=target_bot,
        target_worker=target_worker,
        payload=dict(payload),
        deferred=deferred,
        public_defer=public_defer,
    )
    document = request.model_dump(exclude={"id", "revision_id"})
    result = await FleetRequest.get_pymongo_collection().insert_one(document)
    return result.inserted_id


async def claim_request(request_id: Any, *, worker: str) -> FleetRequest | None:
    """pending → taken, by the worker it names; None if it was cancelled (or taken) first."""
    document = await FleetRequest.get_pymongo_collection().find_one_and_update(
        {"_id": request_id, "target_worker": worker, "status": RequestStatus.PENDING.value},
        {"$set": {"status": RequestStatus.TAKEN.value, "taken_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    return None if document is None else FleetRequest.model_validate(document)


async def cancel_request(request_id: Any) -> bool:
    """pending → cancelled, by the receiving worker; False: it was taken first (the owner answers)."""
    result = await FleetRequest.get_pymongo_collection().update_one(
        {"_id": request_id, "status": RequestStatus.PENDING.value},
        {"$set": {"status": RequestStatus.CANCELLED.value}},
    )
    return result.modified_count == 1


async def pending_requests(worker: str) -> list[FleetRequest]:
    """Requests waiting for `worker` (what a worker without change streams polls)."""
    return await FleetRequest.find({"target_worker": worker, "status": RequestStatus.PENDING.value}).to_list()
