"""Seeding: validate bot entries against the database (and optionally Discord), then upsert them.

Nothing is written unless every entry is valid. The upsert key is the application id
(`client_id`); re-running a seed changes nothing: a stored token whose fingerprint matches is
not re-encrypted (Fernet ciphertexts differ on every call) and `updated_at` only moves when a
field really changed. Optional fields an entry leaves out keep their stored value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymongo.errors import DuplicateKeyError

from app.db.models import MusicBot, utcnow
from app.discord_rest import DiscordRestError, check_token
from app.ops.seed_file import LIMIT_FIELDS, SeedEntry, SeedProblem, validate_entries
from app.tokens import TokenCipher

__all__ = (
    "SeedAction",
    "SeedChange",
    "SeedConflict",
    "SeedRejected",
    "apply_seed",
    "plan_seed",
    "seed_bots",
    "validate_seed",
)

_log = logging.getLogger(__name__)

ONLINE_CHECK_CONCURRENCY = 4


class SeedRejected(Exception):
    """At least one entry is invalid; nothing was written."""

    def __init__(self, problems: Sequence[SeedProblem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = list(problems)


class SeedConflict(Exception):
    """Someone else stored one of these bots between our checks and our writes."""


class SeedAction(StrEnum):
    CREATE = "created"
    UPDATE = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class SeedChange:
    entry: SeedEntry
    action: SeedAction
    enabled: bool  # after the seed: the entry's value, or the stored one when the entry omits it
    changed: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.action is SeedAction.UPDATE:
            return f"{self.action.value} ({', '.join(self.changed)})"
        return self.action.value


def _collection() -> Any:
    return MusicBot.get_pymongo_collection()


async def check_against_database(entries: Sequence[SeedEntry]) -> list[SeedProblem]:
    """A token may be stored only once: another application holding it is a conflict."""
    by_fingerprint = {entry.fingerprint: entry for entry in entries}
    problems: list[SeedProblem] = []
    cursor = _collection().find(
        {"token_fingerprint": {"$in": list(by_fingerprint)}},
        {"client_id": 1, "name": 1, "token_fingerprint": 1},
    )
    async for doc in cursor:
        entry = by_fingerprint[doc["token_fingerprint"]]
        if doc["client_id"] != entry.client_id:
            problems.append(
                SeedProblem(
                    f"the same token is already stored for bot {doc['name']!r} "
                    f"(client id {doc['client_id']})",
                    entry.index,
                    entry.name,
                    "token",
                )
            )
    return problems


async def check_online(entries: Sequence[SeedEntry]) -> list[SeedProblem]:
    """`GET /users/@me` with every token (no gateway session, no IDENTIFY spent)."""
    gate = asyncio.Semaphore(ONLINE_CHECK_CONCURRENCY)

    async def check(entry: SeedEntry) -> SeedProblem | None:
        async with gate:
            try:
                await check_token(entry.token, expected_client_id=entry.client_id)
            except DiscordRestError as exc:
                return SeedProblem(str(exc), entry.index, entry.name, "token")
        return None

    results = await asyncio.gather(*(check(entry) for entry in entries))
    return [problem for problem in results if problem is not None]


async def plan_seed(entries: Sequence[SeedEntry]) -> list[SeedChange]:
    """What writing the entries would change, compared with the stored bots."""
    stored = {
        doc["client_id"]: doc
        async for doc in _collection().find({"client_id": {"$in": [e.client_id for e in entries]}})
    }
    changes: list[SeedChange] = []
    for entry in entries:
        doc = stored.get(entry.client_id)
        if doc is None:
            changes.append(SeedChange(entry, SeedAction.CREATE, entry.enabled))
            continue
        changed: list[str] = []
        if doc.get("name") != entry.name:
            changed.append("name")
        if doc.get("token_fingerprint") != entry.fingerprint:
            changed.append("token")
        for key in ("enabled", "owner_id", "dev_guild_id", "can_clone", *LIMIT_FIELDS):
            if key in entry.given and doc.get(key) != getattr(entry, key):
                changed.append(key)
        enabled = entry.enabled if "enabled" in entry.given else bool(doc.get("enabled", True))
        action = SeedAction.UPDATE if changed else SeedAction.UNCHANGED
        changes.append(SeedChange(entry, action, enabled, tuple(changed)))
    return changes


async def apply_seed(changes: Sequence[SeedChange], cipher: TokenCipher) -> None:
    try:
        for change in changes:
            await _apply_one(change, cipher)
    except DuplicateKeyError as exc:
        raise SeedConflict(
            "another process stored one of these bots (or its token) while this seed ran; "
            "run it again: seeding is idempotent"
        ) from exc


async def _apply_one(change: SeedChange, cipher: TokenCipher) -> None:
    entry = change.entry
    if change.action is SeedAction.CREATE:
        await MusicBot(
            name=entry.name,
            client_id=entry.client_id,
            token_ciphertext=cipher.encrypt(entry.token),
            token_fingerprint=entry.fingerprint,
            enabled=entry.enabled,
            owner_id=entry.owner_id,
            dev_guild_id=entry.dev_guild_id,
            can_clone=entry.can_clone,
            queue_limit=entry.queue_limit,
            max_track_seconds=entry.max_track_seconds,
            guild_cap=entry.guild_cap,
            shard_count=entry.shard_count,
        ).insert()
        _log.info("Stored bot %r (%d)", entry.name, entry.client_id)
    elif change.action is SeedAction.UPDATE:
        update: dict[str, Any] = {"updated_at": utcnow()}
        for key in change.changed:
            if key == "token":
                update["token_ciphertext"] = cipher.encrypt(entry.token)
                update["token_fingerprint"] = entry.fingerprint
            else:
                update[key] = getattr(entry, key)
        # Targeted $set: the running service updates guild counts on the same document.
        await _collection().update_one({"client_id": entry.client_id}, {"$set": update})
        _log.info("Updated bot %r (%d): %s", entry.name, entry.client_id, ", ".join(change.changed))


def validate_seed(raw_entries: Sequence[Any]) -> list[SeedEntry]:
    """The offline checks (shape, values, duplicates in the file): no database needed.

    Raises `SeedRejected` with every problem found.
    """
    entries, problems = validate_entries(raw_entries)
    if problems:
        raise SeedRejected(problems)
    return entries


async def seed_bots(
    entries: Sequence[SeedEntry], *, cipher: TokenCipher, online: bool = False, dry_run: bool = False
) -> list[SeedChange]:
    """Check valid entries against the database (and optionally Discord), then upsert them.

    Raises `SeedRejected` with every problem found, before anything is written.
    """
    problems = await check_against_database(entries)
    if online:
        problems += await check_online(entries)
    if problems:
        raise SeedRejected(sorted(problems, key=lambda p: p.index or 0))
    changes = await plan_seed(entries)
    if not dry_run:
        await apply_seed(changes, cipher)
    return changes
