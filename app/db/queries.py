"""Data access, under the names the original multi-bot code used."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from app.db.models import (
    BotIdentifyLog,
    GuildPreferences,
    MusicBot,
    PlayerSnapshot,
    ServerMusicBot,
    ServerStatus,
    utcnow,
)

IDENTIFY_WINDOW = timedelta(hours=24)
INVITE_EXPIRED = "invite expired unused"
_IDENTIFY_LOG_CAP = 1000  # Discord's daily budget: older entries can never matter


async def get_active_music_bots() -> list[MusicBot]:
    """Every enabled bot, oldest first."""
    return await MusicBot.find(MusicBot.enabled == True).sort("+created_at").to_list()  # noqa: E712


@dataclass(frozen=True, slots=True)
class InviteCandidate:
    """What choosing a bot to invite needs of it, and nothing more (no token ciphertext)."""

    id: PydanticObjectId
    client_id: int
    name: str
    guild_count: int
    guild_cap: int | None
    created_at: datetime


async def invite_candidates() -> AsyncIterator[InviteCandidate]:
    """The enabled network bots (no clones), least guilds first, then oldest: the index
    `invite_candidates` answers it, so a caller that stops early reads only what it used."""
    cursor = MusicBot.get_pymongo_collection().find(
        {"enabled": True, "owner_id": None},
        {"client_id": 1, "name": 1, "guild_count": 1, "guild_cap": 1, "created_at": 1},
        sort=[("guild_count", 1), ("created_at", 1)],
    )
    async for doc in cursor:
        yield InviteCandidate(
            id=doc["_id"],
            client_id=doc["client_id"],
            name=doc["name"],
            guild_count=doc.get("guild_count", 0),
            guild_cap=doc.get("guild_cap"),
            created_at=doc["created_at"],
        )


async def get_disabled_music_bots() -> list[MusicBot]:
    """Every disabled bot, oldest first (listed, never started)."""
    return await MusicBot.find(MusicBot.enabled == False).sort("+created_at").to_list()  # noqa: E712


async def get_all_music_bots() -> list[MusicBot]:
    """Every stored bot, enabled or not, oldest first."""
    return await MusicBot.find_all().sort("+created_at").to_list()


async def get_music_bot_by_client_id(client_id: int) -> MusicBot | None:
    return await MusicBot.find_one(MusicBot.client_id == client_id)


async def update_music_bot(
    client_id: int, *, name: str | None = None, enabled: bool | None = None
) -> tuple[MusicBot | None, bool]:
    """The one write of a bot's name and enabled flag: the admin API, `chorus bots enable|disable`
    and `/clone_stop` all come here. Returns the bot as stored afterwards (None: no such bot) and
    whether anything changed; `updated_at` moves only on a real change. Disabling forgets the
    bot's saved players, also when no running service sees the change."""
    changes: dict[str, str | bool] = {}
    if name is not None:
        changes["name"] = name
    if enabled is not None:
        changes["enabled"] = enabled
    changed = False
    if changes:
        result = await MusicBot.get_pymongo_collection().update_one(
            {"client_id": client_id, "$or": [{field: {"$ne": value}} for field, value in changes.items()]},
            {"$set": {**changes, "updated_at": utcnow()}},
        )
        changed = result.modified_count > 0
    if changed and enabled is False:
        await forget_player_snapshots(client_id)
    return await get_music_bot_by_client_id(client_id), changed


async def delete_music_bot(client_id: int) -> MusicBot | None:
    """The one delete of a bot (the admin API and `chorus bots remove`): its guild records, its
    saved players, then the bot itself (last, so an interrupted delete can simply be run again).
    Its identify log stays: Discord's daily budget still counts. Returns the deleted bot, or None."""
    bot = await get_music_bot_by_client_id(client_id)
    if bot is None:
        return None
    assert bot.id is not None, "a stored document has an id"
    await ServerMusicBot.get_pymongo_collection().delete_many({"music_bot_id": bot.id})
    await forget_player_snapshots(client_id)
    await MusicBot.get_pymongo_collection().delete_one({"_id": bot.id})
    return bot


async def get_music_bot_for_guild(guild_id: int) -> MusicBot | None:
    """An enabled bot that is active in the guild (the longest-serving one)."""
    assignments = (
        await ServerMusicBot.find(
            ServerMusicBot.server_id == guild_id, ServerMusicBot.status == ServerStatus.ACTIVE
        )
        .sort("+activated_at")
        .to_list()
    )
    for assignment in assignments:
        bot = await MusicBot.find_one(MusicBot.id == assignment.music_bot_id, MusicBot.enabled == True)  # noqa: E712
        if bot is not None:
            return bot
    return None


async def update_bot_guild_count(client_id: int, *, guild_count: int, user_count: int) -> None:
    await MusicBot.get_pymongo_collection().update_one(
        {"client_id": client_id},
        {"$set": {"guild_count": guild_count, "user_count": user_count, "updated_at": utcnow()}},
    )


def _fence(epoch: int | None) -> dict[str, Any]:
    """The filter half of a write fenced by a lease epoch: it applies only to a record no newer
    owner has written (see docs/SCALING.md, "Fencing"). An upsert that misses because a newer
    epoch wrote collides with the unique index instead of inserting."""
    return {} if epoch is None else {"epoch": {"$not": {"$gt": epoch}}}


def _stamp(epoch: int | None) -> dict[str, Any]:
    return {} if epoch is None else {"epoch": epoch}


async def activate_bot_in_guild(
    music_bot_id: PydanticObjectId, guild_id: int, *, epoch: int | None = None
) -> bool:
    """Mark the bot ACTIVE in the guild. Returns True when the state changed.

    Atomic: an upsert that only matches a non-active record; if an active one exists the
    insert half collides with the unique (server, bot) index, which means "already active"
    (or, with `epoch`, "written by a newer owner": fenced).
    `activated_at` is set when the bot becomes active, not again on every READY.
    """
    now = utcnow()
    try:
        await ServerMusicBot.get_pymongo_collection().update_one(
            {
                "server_id": guild_id,
                "music_bot_id": music_bot_id,
                "status": {"$ne": ServerStatus.ACTIVE.value},
                **_fence(epoch),
            },
            {
                "$set": {
                    "status": ServerStatus.ACTIVE.value,
                    "activated_at": now,
                    "removed_at": None,
                    "reason": None,
                    "updated_at": now,
                    **_stamp(epoch),
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True


async def deactivate_bot_in_guild(
    music_bot_id: PydanticObjectId, guild_id: int, *, reason: str | None = None
) -> bool:
    """Mark the bot REMOVED from the guild. Returns True when the state changed."""
    now = utcnow()
    result = await ServerMusicBot.get_pymongo_collection().update_one(
        {"server_id": guild_id, "music_bot_id": music_bot_id, "status": ServerStatus.ACTIVE.value},
        {
            "$set": {
                "status": ServerStatus.REMOVED.value,
                "removed_at": now,
                "reason": reason,
                "updated_at": now,
            }
        },
    )
    return result.modified_count > 0


async def mark_bot_failed_in_guild(
    music_bot_id: PydanticObjectId, guild_id: int, *, reason: str, epoch: int | None = None
) -> bool:
    """The bot is in the guild but cannot work there (e.g. no Connect/Speak permission)."""
    now = utcnow()
    try:
        result = await ServerMusicBot.get_pymongo_collection().update_one(
            {"server_id": guild_id, "music_bot_id": music_bot_id, **_fence(epoch)},
            {
                "$set": {
                    "status": ServerStatus.FAILED.value,
                    "reason": reason,
                    "updated_at": now,
                    **_stamp(epoch),
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )
    except DuplicateKeyError:  # a newer owner wrote this record: fenced
        return False
    return result.modified_count > 0 or result.upserted_id is not None


async def record_pending_invite(music_bot_id: PydanticObjectId, guild_id: int) -> None:
    """PENDING_INVITE for (guild, bot), unless the bot is already active there."""
    now = utcnow()
    with contextlib.suppress(DuplicateKeyError):  # already active: nothing to invite
        await ServerMusicBot.get_pymongo_collection().update_one(
            {
                "server_id": guild_id,
                "music_bot_id": music_bot_id,
                "status": {"$ne": ServerStatus.ACTIVE.value},
            },
            {
                "$set": {"status": ServerStatus.PENDING_INVITE.value, "reason": None, "updated_at": now},
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )


async def expire_pending_invites(older_than: timedelta) -> int:
    """Invites never used within `older_than` become FAILED ("invite expired"). Returns how many.

    A read first (the `status_bot` index): a sweep that finds nothing writes nothing, so an idle
    fleet makes no database writes for it (an empty update_many is still a write operation)."""
    now = utcnow()
    collection = ServerMusicBot.get_pymongo_collection()
    expired = {"status": ServerStatus.PENDING_INVITE.value, "updated_at": {"$lt": now - older_than}}
    if await collection.find_one(expired, {"_id": 1}) is None:
        return 0
    result = await collection.update_many(
        expired,
        {"$set": {"status": ServerStatus.FAILED.value, "reason": INVITE_EXPIRED, "updated_at": now}},
    )
    return result.modified_count


async def guild_assignments(guild_id: int) -> list[ServerMusicBot]:
    return await ServerMusicBot.find(ServerMusicBot.server_id == guild_id).sort("+created_at").to_list()


async def pending_invite_counts() -> dict[PydanticObjectId, int]:
    pipeline: list[dict[str, object]] = [
        {"$match": {"status": ServerStatus.PENDING_INVITE.value}},
        {"$group": {"_id": "$music_bot_id", "count": {"$sum": 1}}},
    ]
    cursor = await ServerMusicBot.get_pymongo_collection().aggregate(pipeline)
    return {doc["_id"]: doc["count"] async for doc in cursor}


async def active_guild_ids(music_bot_id: PydanticObjectId) -> set[int]:
    cursor = ServerMusicBot.get_pymongo_collection().find(
        {"music_bot_id": music_bot_id, "status": ServerStatus.ACTIVE.value}, {"server_id": 1}
    )
    return {doc["server_id"] async for doc in cursor}


async def active_guild_ids_of_bots(
    music_bot_ids: Collection[PydanticObjectId],
) -> dict[PydanticObjectId, set[int]]:
    """`active_guild_ids` of many bots in one query (a fleet's start): every bot asked for has
    an entry, empty when it is active nowhere."""
    found: dict[PydanticObjectId, set[int]] = {bot_id: set() for bot_id in music_bot_ids}
    cursor = ServerMusicBot.get_pymongo_collection().find(
        {"status": ServerStatus.ACTIVE.value, "music_bot_id": {"$in": list(found)}},
        {"music_bot_id": 1, "server_id": 1, "_id": 0},
    )
    async for doc in cursor:
        found[doc["music_bot_id"]].add(doc["server_id"])
    return found


async def bots_with_player_snapshots(client_ids: Collection[int]) -> set[int]:
    """Which of these bots have saved players (to resume): one query for a fleet's start."""
    ids = await PlayerSnapshot.get_pymongo_collection().distinct(
        "bot_id", {"bot_id": {"$in": list(client_ids)}}
    )
    return set(ids)


async def reconcile_bot_guilds(
    music_bot_id: PydanticObjectId,
    guild_ids: Collection[int],
    *,
    failed: Mapping[int, str] | None = None,
    unavailable: Collection[int] = (),
    epoch: int | None = None,
    recorded: Collection[int] | None = None,
) -> tuple[int, int]:
    """Make the records match the guilds the bot is in now. Returns (activated, removed).

    `failed` maps guilds the bot is in but cannot work in to the reason; they become FAILED.
    `unavailable` guilds (a Discord outage: the bot is in them, their data has not arrived)
    keep whatever record they have. With `epoch` (the owner's lease epoch) every write is
    fenced: records a newer owner wrote are left alone. `recorded`: the bot's active guilds when
    the caller knows them (read for the whole fleet at its start); None: read here.
    """
    failed = failed or {}
    recorded = set(recorded) if recorded is not None else await active_guild_ids(music_bot_id)
    current = set(guild_ids)
    for guild_id, reason in failed.items():
        await mark_bot_failed_in_guild(music_bot_id, guild_id, reason=reason, epoch=epoch)
    activated = 0
    for guild_id in current - recorded - set(failed):
        activated += await activate_bot_in_guild(music_bot_id, guild_id, epoch=epoch)
    removed = 0
    gone = recorded - current - set(failed) - set(unavailable)
    if gone:
        now = utcnow()
        result = await ServerMusicBot.get_pymongo_collection().update_many(
            {
                "music_bot_id": music_bot_id,
                "status": ServerStatus.ACTIVE.value,
                "server_id": {"$in": list(gone)},
                **_fence(epoch),
            },
            {
                "$set": {
                    "status": ServerStatus.REMOVED.value,
                    "removed_at": now,
                    "updated_at": now,
                    **_stamp(epoch),
                }
            },
        )
        removed = result.modified_count
    return activated, removed


async def record_identifies_of_bots(timestamps: Mapping[int, Sequence[datetime]]) -> None:
    """Append IDENTIFYs to the logs of many bots in one bulk write (the newest `_IDENTIFY_LOG_CAP`
    of each are kept), reading nothing: a worker's IDENTIFYs of a short window, or at its stop.

    Idempotent: an entry already logged is not logged again, so a write retried after a timeout
    that the server had applied anyway does not count an IDENTIFY twice. (Dates are compared as
    epoch milliseconds, `$toLong`: SecantusDB mis-compares dates directly.)"""
    logged = {"$ifNull": ["$timestamps", []]}
    requests = [
        UpdateOne(
            {"client_id": client_id},
            [
                {
                    "$set": {
                        "timestamps": {
                            "$slice": [
                                {"$concatArrays": [logged, _not_in(list(batch), logged)]},
                                -_IDENTIFY_LOG_CAP,
                            ]
                        }
                    }
                }
            ],
            upsert=True,
        )
        for client_id, batch in timestamps.items()
        if batch
    ]
    if requests:
        await BotIdentifyLog.get_pymongo_collection().bulk_write(requests, ordered=False)


def _not_in(dates: list[datetime], logged: Mapping[str, object]) -> dict[str, object]:
    """The `dates` not in the array `logged` (an aggregation expression)."""
    known = {"$map": {"input": logged, "as": "at", "in": {"$toLong": "$$at"}}}
    return {
        "$filter": {"input": dates, "as": "new", "cond": {"$not": [{"$in": [{"$toLong": "$$new"}, known]}]}}
    }


async def identify_logs(client_ids: Collection[int]) -> dict[int, list[datetime]]:
    """The logged IDENTIFYs of the last 24 hours of many bots, oldest first, in one query: every
    bot asked for has an entry, empty when it never identified."""
    since = utcnow() - IDENTIFY_WINDOW
    logs: dict[int, list[datetime]] = {client_id: [] for client_id in client_ids}
    cursor = BotIdentifyLog.get_pymongo_collection().find(
        {"client_id": {"$in": list(logs)}}, {"client_id": 1, "timestamps": 1, "_id": 0}
    )
    async for doc in cursor:
        logs[doc["client_id"]] = sorted(ts for ts in doc.get("timestamps", []) if ts >= since)
    return logs


async def forget_player_snapshots(client_id: int) -> int:
    """Delete every saved player of a bot that was disabled or deleted: re-enabling it must not
    rejoin a channel that has long been empty and start playing. Returns how many were deleted.

    Not for a restart or a shutdown: those save players precisely so they resume.
    """
    result = await PlayerSnapshot.get_pymongo_collection().delete_many({"bot_id": client_id})
    return result.deleted_count


async def set_guild_language(guild_id: int, language: str | None) -> None:
    """The one write of a guild's language (`/settings language`), for every bot of the network."""
    await GuildPreferences.get_pymongo_collection().update_one(
        {"guild_id": guild_id}, {"$set": {"language": language, "updated_at": utcnow()}}, upsert=True
    )
