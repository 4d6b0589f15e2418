"""Seed files: parsing and validating bot entries, without touching the database or Discord.

A seed file is JSON: either a list of entries, or an object whose `bots` key holds that list.
Keys starting with `_` (e.g. `"_comment"`) are ignored anywhere, because JSON has no comments.
Every problem of every entry is collected, so an operator fixes the whole file in one go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.tokens import (
    NAME_REFUSAL,
    InvalidTokenFormat,
    client_id_from_token,
    contains_token,
    token_fingerprint,
)

__all__ = (
    "ENTRY_FIELDS",
    "LIMIT_FIELDS",
    "NAME_MAX_LENGTH",
    "PLACEHOLDER_PREFIX",
    "SeedEntry",
    "SeedFileError",
    "SeedProblem",
    "parse_seed_text",
    "validate_entries",
    "validate_entry",
)

NAME_MAX_LENGTH = 80
# The template's tokens start with this; it can never be the start of a real token.
PLACEHOLDER_PREFIX = "PASTE-"
# Per-bot limits: null (or absent) falls back to the service's settings; the minimum is per field.
# `shard_count` (gateway shards) null: automatic, as Discord requires or recommends.
LIMIT_FIELDS: dict[str, int] = {"queue_limit": 1, "max_track_seconds": 0, "guild_cap": 1, "shard_count": 1}
ENTRY_FIELDS: tuple[str, ...] = (
    "name", "token", "client_id", "enabled", "owner_id", "dev_guild_id", "can_clone", *LIMIT_FIELDS,
)  # fmt: skip
_OPTIONAL_FIELDS = frozenset({"client_id", "enabled", "owner_id", "dev_guild_id", "can_clone", *LIMIT_FIELDS})
_MAX_SNOWFLAKE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SeedProblem:
    """One thing wrong with the file or one of its entries. Never contains a token."""

    message: str
    index: int | None = None  # 1-based position of the entry; None: the file itself
    name: str | None = None
    field: str | None = None

    @property
    def where(self) -> str:
        if self.index is None:
            return "file"
        label = f"entry #{self.index}"
        return f"{label} ({self.name!r})" if self.name else label

    def __str__(self) -> str:
        field_part = f", field {self.field!r}" if self.field else ""
        return f"{self.where}{field_part}: {self.message}"


class SeedFileError(Exception):
    """The file cannot be read as a seed file at all (bad JSON, wrong top-level shape)."""

    def __init__(self, problems: Sequence[SeedProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class SeedEntry:
    """A valid entry. `given` names the optional fields the entry set explicitly."""

    index: int
    name: str
    token: str = field(repr=False)
    client_id: int
    fingerprint: str = field(repr=False)
    enabled: bool = True
    owner_id: int | None = None
    dev_guild_id: int | None = None
    can_clone: bool = False
    queue_limit: int | None = None
    max_track_seconds: int | None = None
    guild_cap: int | None = None
    shard_count: int | None = None
    given: frozenset[str] = frozenset()


def parse_seed_text(text: str) -> list[Any]:
    """The raw entries of a seed file. Raises `SeedFileError` naming the line of bad JSON."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedFileError(
            [SeedProblem(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
        ) from None
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        problems = [
            SeedProblem(
                f"unknown top-level key {key!r} (expected 'bots'; keys starting with '_' are comments)"
            )
            for key in document
            if key != "bots" and not str(key).startswith("_")
        ]
        entries = document.get("bots")
        if not isinstance(entries, list):
            problems.append(SeedProblem("expected a 'bots' list of entries"))
        if problems:
            raise SeedFileError(problems)
        assert isinstance(entries, list)
        return entries
    raise SeedFileError([SeedProblem("expected a list of bot entries, or an object with a 'bots' list")])


def _snowflake(value: Any) -> int | None:
    """A Discord id given as a number or a string of digits (JSON numbers lose nothing here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    return number if 0 < number <= _MAX_SNOWFLAKE else None


def _check_token(value: Any) -> tuple[str | None, int | None, str | None]:
    """(token, client id, problem): exactly one of client id and problem is set."""
    if not isinstance(value, str):
        return None, None, "must be a string"
    token = value.strip()
    if not token:
        return None, None, "must not be empty"
    if token.startswith(PLACEHOLDER_PREFIX):
        return (
            None,
            None,
            (
                "still the template's placeholder: replace it with the bot's token "
                "(Developer Portal > your application > Bot > Reset Token)"
            ),
        )
    if token.lower().startswith("bot "):
        return None, None, "remove the 'Bot ' prefix: the value is the token alone"
    try:
        return token, client_id_from_token(token), None
    except InvalidTokenFormat as exc:
        return None, None, str(exc)


@dataclass(frozen=True, slots=True)
class _Identity:
    """What duplicate detection needs of an entry whose token is valid (even if others are not)."""

    index: int
    name: str | None
    fingerprint: str
    client_id: int
    client_id_given: bool

    @property
    def label(self) -> str:
        return f"entry #{self.index}" + (f" ({self.name!r})" if self.name else "")


def _validate(raw: Any, index: int) -> tuple[SeedEntry | None, list[SeedProblem], _Identity | None]:
    if not isinstance(raw, Mapping):
        return None, [SeedProblem("must be an object with at least 'name' and 'token'", index)], None
    entry: Mapping[str, Any] = raw
    raw_name = entry.get("name")
    label_name = raw_name.strip() if isinstance(raw_name, str) and raw_name.strip() else None
    if label_name is not None and contains_token(label_name):
        label_name = None  # problems name the entry by number only: never repeat a token
    problems: list[SeedProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(SeedProblem(message, index, label_name, field_name))

    for key in entry:
        if key not in ENTRY_FIELDS and not str(key).startswith("_"):
            shown = "[a key that looks like a token]" if contains_token(str(key)) else str(key)
            problem(shown, f"unknown field (expected one of: {', '.join(ENTRY_FIELDS)})")

    name = ""
    if "name" not in entry:
        problem("name", "missing (required)")
    elif not isinstance(raw_name, str):
        problem("name", "must be a string")
    else:
        name = raw_name.strip()
        if not name:
            problem("name", "must not be empty")
        elif len(name) > NAME_MAX_LENGTH:
            problem("name", f"must be at most {NAME_MAX_LENGTH} characters (has {len(name)})")
        elif contains_token(name):
            problem("name", NAME_REFUSAL)

    token: str | None = None
    client_id: int | None = None
    if "token" not in entry:
        problem("token", "missing (required)")
    else:
        token, client_id, token_problem = _check_token(entry["token"])
        if token_problem is not None:
            problem("token", token_problem)

    if "client_id" in entry:
        given_id = _snowflake(entry["client_id"])
        if given_id is None:
            problem("client_id", "must be the application id (a number, or a string of digits)")
        elif client_id is not None and given_id != client_id:
            problem("client_id", f"is {given_id}, but the token belongs to application {client_id}")

    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        problem("enabled", "must be true or false")

    ids: dict[str, int | None] = {}
    for key in ("owner_id", "dev_guild_id"):
        value = entry.get(key)
        ids[key] = None if value is None else _snowflake(value)
        if value is not None and ids[key] is None:
            problem(key, "must be a Discord id (a number, or a string of digits) or null")

    can_clone = entry.get("can_clone", False)
    if not isinstance(can_clone, bool):
        problem("can_clone", "must be true or false")

    limits: dict[str, int | None] = {}
    for key, minimum in LIMIT_FIELDS.items():
        value = entry.get(key)
        if value is None:
            limits[key] = None
        elif isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            problem(key, f"must be a whole number of at least {minimum}, or null for the service's default")
            limits[key] = None
        else:
            limits[key] = value

    if token is None or client_id is None:
        return None, problems, None
    fingerprint = token_fingerprint(token)
    identity = _Identity(index, label_name, fingerprint, client_id, "client_id" in entry)
    if problems:
        return None, problems, identity
    valid = SeedEntry(
        index=index,
        name=name,
        token=token,
        client_id=client_id,
        fingerprint=fingerprint,
        enabled=bool(enabled),
        owner_id=ids["owner_id"],
        dev_guild_id=ids["dev_guild_id"],
        can_clone=bool(can_clone),
        queue_limit=limits["queue_limit"],
        max_track_seconds=limits["max_track_seconds"],
        guild_cap=limits["guild_cap"],
        shard_count=limits["shard_count"],
        given=frozenset(key for key in _OPTIONAL_FIELDS if key in entry),
    )
    return valid, [], identity


def validate_entry(raw: Any, index: int) -> tuple[SeedEntry | None, list[SeedProblem]]:
    """Check one entry on its own (shape and values). `index` is 1-based."""
    entry, problems, _ = _validate(raw, index)
    return entry, problems


def validate_entries(raw_entries: Sequence[Any]) -> tuple[list[SeedEntry], list[SeedProblem]]:
    """Check every entry and the duplicates between them. Returns (valid entries, problems);
    the entries may be used only when there is no problem."""
    entries: list[SeedEntry] = []
    identities: list[_Identity] = []
    problems: list[SeedProblem] = []
    for position, raw in enumerate(raw_entries, start=1):
        entry, entry_problems, identity = _validate(raw, position)
        problems.extend(entry_problems)
        if entry is not None:
            entries.append(entry)
        if identity is not None:
            identities.append(identity)
    if not raw_entries:
        problems.append(SeedProblem("the file has no bot entries"))

    by_fingerprint: dict[str, _Identity] = {}
    by_client_id: dict[int, _Identity] = {}
    for identity in identities:
        first = by_fingerprint.setdefault(identity.fingerprint, identity)
        if first is not identity:
            problems.append(
                SeedProblem(f"the same token as {first.label}", identity.index, identity.name, "token")
            )
            continue  # the same token is necessarily the same application: one problem is enough
        first = by_client_id.setdefault(identity.client_id, identity)
        if first is not identity:
            problems.append(
                SeedProblem(
                    f"application {identity.client_id} is already {first.label} (with another token)",
                    identity.index,
                    identity.name,
                    "client_id" if identity.client_id_given else "token",
                )
            )
    problems.sort(key=lambda p: p.index or 0)
    return entries, problems
