"""Plain data of the fake Discord: users, members, permissions and messages.

Split out of :mod:`tests.fakes.discord` (which re-exports the public names); nothing here talks
to the network.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aiohttp import web

__all__ = [
    "FakeButton",
    "FakeMember",
    "FakeMessage",
    "FakeSelect",
    "FakeUser",
    "Permission",
]

Json = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
MESSAGE_FLAG_SUPPRESS_EMBEDS = 1 << 2
MESSAGE_FLAG_EPHEMERAL = 1 << 6
MESSAGE_FLAG_LOADING = 1 << 7
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


class Permission(enum.IntFlag):
    """The permission bits the fake computes with (Discord's values)."""

    CREATE_INSTANT_INVITE = 1 << 0
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    MUTE_MEMBERS = 1 << 22
    DEAFEN_MEMBERS = 1 << 23
    MOVE_MEMBERS = 1 << 24
    USE_VAD = 1 << 25
    USE_APPLICATION_COMMANDS = 1 << 31
    SET_VOICE_CHANNEL_STATUS = 1 << 48


ALL_PERMISSIONS = (1 << 53) - 1


class Snowflakes:
    """Strictly increasing, snowflake-shaped (18/19 digit) ids."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


new_snowflake = Snowflakes()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def error(status: int, message: str, code: int = 0, errors: Json | None = None) -> web.Response:
    data: Json = {"message": message, "code": code}
    if errors:
        data["errors"] = errors
    return json_response(data, status=status)


def field_error(code: str, message: str) -> Json:
    return {"_errors": [{"code": code, "message": message}]}


def form_error(errors: Json) -> web.Response:
    """Discord's 400 "Invalid Form Body" with per-field errors (discord.py flattens them)."""
    return error(400, "Invalid Form Body", 50035, errors)


def user_payload(user_id: int, name: str, *, bot: bool) -> Json:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None if bot else name,
        "avatar": None,
        "bot": bot,
        "flags": 0,
        "public_flags": 0,
    }


@dataclass(eq=False)
class FakeUser:
    """A human Discord user."""

    id: int
    name: str

    def user_payload(self) -> Json:
        return user_payload(self.id, self.name, bot=False)


@dataclass(eq=False)
class FakeMember:
    """A user's (or a bot's) membership of one guild."""

    user_id: int
    roles: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=now_iso)
    nick: str | None = None

    def payload(self, user: Json, *, permissions: int | None = None) -> Json:
        data: Json = {
            "user": user,
            "roles": [str(r) for r in self.roles],
            "joined_at": self.joined_at,
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "communication_disabled_until": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


def role_payload(role_id: int, name: str, permissions: int, position: int) -> Json:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(permissions),
        "position": position,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def compute_permissions(
    *,
    guild_id: int,
    owner_id: int,
    member: FakeMember | None,
    roles: Sequence[Json],
    overwrites: Sequence[Json] | None = None,
) -> int:
    """Discord's permission algorithm: base (roles) then channel overwrites."""
    user_id = member.user_id if member is not None else 0
    if member is not None and user_id == owner_id:
        return ALL_PERMISSIONS
    by_id = {int(r["id"]): int(r["permissions"]) for r in roles}
    member_roles = set(member.roles) if member is not None else set()
    perms = by_id.get(guild_id, 0)
    for role_id in member_roles:
        perms |= by_id.get(role_id, 0)
    if perms & Permission.ADMINISTRATOR:
        return ALL_PERMISSIONS
    if not overwrites:
        return perms
    by_target = {(int(o["type"]), int(o["id"])): o for o in overwrites}
    everyone = by_target.get((0, guild_id))
    if everyone is not None:
        perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
    allow = deny = 0
    for role_id in member_roles:
        overwrite = by_target.get((0, role_id))
        if overwrite is not None:
            allow |= int(overwrite["allow"])
            deny |= int(overwrite["deny"])
    perms = (perms & ~deny) | allow
    own = by_target.get((1, user_id))
    if own is not None:
        perms = (perms & ~int(own["deny"])) | int(own["allow"])
    return perms


# ---------------------------------------------------------------------- components and messages


class FakeButton(NamedTuple):
    custom_id: str | None
    label: str | None
    url: str | None
    disabled: bool


class FakeSelect(NamedTuple):
    custom_id: str
    type: int  # 3 string, 5 user, 6 role, 7 mentionable, 8 channel
    placeholder: str | None
    options: list[tuple[str, str]]  # (label, value) of a string select
    min_values: int
    max_values: int
    disabled: bool


SELECT_TYPES = frozenset({3, 5, 6, 7, 8})


def walk_components(components: Sequence[Json]) -> Iterator[Json]:
    """Every component, depth first (action rows, containers, sections, labels included)."""
    for component in components:
        yield component
        yield from walk_components(component.get("components") or [])
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from walk_components([child])


def number_components(components: Sequence[Json]) -> list[Json]:
    """A copy where every component has Discord's numeric ``id`` (assigned in order when missing)."""
    copied: list[Json] = json.loads(json.dumps(list(components)))
    used = {c["id"] for c in walk_components(copied) if isinstance(c.get("id"), int)}
    next_id = 1
    for component in walk_components(copied):
        if not isinstance(component.get("id"), int):
            while next_id in used:
                next_id += 1
            component["id"] = next_id
            used.add(next_id)
    return copied


def embed_text(embed: Mapping[str, Any]) -> list[str]:
    parts: list[str] = []
    author = embed.get("author") or {}
    footer = embed.get("footer") or {}
    for value in (author.get("name"), embed.get("title"), embed.get("description")):
        if value:
            parts.append(str(value))
    for item in embed.get("fields") or []:
        parts.extend(str(item[k]) for k in ("name", "value") if item.get(k))
    if footer.get("text"):
        parts.append(str(footer["text"]))
    return parts


@dataclass(eq=False)
class FakeMessage:
    """A message the fake stores: interaction responses, followups and channel posts."""

    id: int
    channel_id: int
    guild_id: int | None
    author: Json
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    flags: int = 0
    attachments: list[Json] = field(default_factory=list)
    type: int = 0
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: Json | None = None
    message_reference: Json | None = None
    timestamp: str = field(default_factory=now_iso)
    edited_timestamp: str | None = None
    deleted: bool = False
    # The patches applied by edits, oldest first.
    edits: list[Json] = field(default_factory=list)

    @classmethod
    def create(cls, data: Mapping[str, Any], **kwargs: Any) -> FakeMessage:
        message = cls(id=new_snowflake(), **kwargs)
        message.content = str(data.get("content") or "")
        message.embeds = [dict(e) for e in data.get("embeds") or []]
        message.components = number_components(data.get("components") or [])
        message.flags |= int(data.get("flags") or 0)
        message.attachments = _attachments(data.get("attachments") or [], [])
        if data.get("message_reference"):
            message.message_reference = dict(data["message_reference"])
        return message

    def apply_edit(self, patch: Mapping[str, Any]) -> None:
        if "content" in patch:
            self.content = str(patch["content"] or "")
        if "embeds" in patch:
            self.embeds = [dict(e) for e in patch["embeds"] or []]
        if "components" in patch:
            self.components = number_components(patch["components"] or [])
        if "attachments" in patch:
            self.attachments = _attachments(patch["attachments"] or [], self.attachments)
        if patch.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be changed by an edit; ephemeral stays as it was.
            suppress = int(patch["flags"]) & MESSAGE_FLAG_SUPPRESS_EMBEDS
            self.flags = (self.flags & ~MESSAGE_FLAG_SUPPRESS_EMBEDS) | suppress
        self.flags &= ~MESSAGE_FLAG_LOADING
        self.edited_timestamp = now_iso()
        self.edits.append(dict(patch))

    @property
    def author_id(self) -> int:
        return int(self.author["id"])

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred ("is thinking...") response not yet filled in."""
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    @property
    def has_body(self) -> bool:
        return bool(self.content or self.embeds or self.components or self.attachments)

    @property
    def text(self) -> str:
        """Content, embed texts and text displays flattened into one string, for assertions."""
        parts = [self.content] if self.content else []
        for embed in self.embeds:
            parts.extend(embed_text(embed))
        for component in walk_components(self.components):
            if component.get("type") == 10 and component.get("content"):
                parts.append(str(component["content"]))
        return "\n".join(parts)

    @property
    def buttons(self) -> list[FakeButton]:
        return [
            FakeButton(c.get("custom_id"), c.get("label"), c.get("url"), bool(c.get("disabled", False)))
            for c in walk_components(self.components)
            if c.get("type") == 2
        ]

    @property
    def selects(self) -> list[FakeSelect]:
        return [
            FakeSelect(
                custom_id=str(c.get("custom_id")),
                type=int(c["type"]),
                placeholder=c.get("placeholder"),
                options=[(str(o.get("label")), str(o.get("value"))) for o in c.get("options") or []],
                min_values=int(c.get("min_values", 1)),
                max_values=int(c.get("max_values", 1)),
                disabled=bool(c.get("disabled", False)),
            )
            for c in walk_components(self.components)
            if c.get("type") in SELECT_TYPES
        ]

    def component(self, custom_id: str) -> Json | None:
        return next((c for c in walk_components(self.components) if c.get("custom_id") == custom_id), None)

    def to_payload(self) -> Json:
        data: Json = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.type,
            "content": self.content,
            "author": dict(self.author),
            "embeds": [dict(e) for e in self.embeds],
            "components": json.loads(json.dumps(self.components)),
            "attachments": [dict(a) for a in self.attachments],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = dict(self.interaction_metadata)
        if self.message_reference is not None:
            data["message_reference"] = dict(self.message_reference)
        return data


def _attachments(requested: Sequence[Json], existing: Sequence[Json]) -> list[Json]:
    """Keep ``existing`` attachments listed by snowflake id; turn new uploads into attachments."""
    kept = {a["id"]: a for a in existing}
    result: list[Json] = []
    for item in requested:
        ident = str(item.get("id", ""))
        if ident in kept:
            result.append(kept[ident])
            continue
        filename = str(item.get("filename") or f"file{ident}")
        new_id = str(new_snowflake())
        url = f"https://cdn.fake.invalid/attachments/{new_id}/{filename}"
        result.append(
            {
                "id": new_id,
                "filename": filename,
                "size": int(item.get("size") or 0),
                "url": url,
                "proxy_url": url,
                "content_type": item.get("content_type"),
                "description": item.get("description"),
            }
        )
    return result


# ---------------------------------------------------------------------- validation (Discord's limits)


def _too_long(errors: Json, path: str, value: Any, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors[path] = field_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _embed_errors(errors: Json, embeds: Sequence[Json]) -> None:
    if len(embeds) > 10:
        errors["embeds"] = field_error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        return
    total = 0
    for i, embed in enumerate(embeds):
        prefix = f"embeds.{i}"
        _too_long(errors, f"{prefix}.title", embed.get("title"), 256)
        _too_long(errors, f"{prefix}.description", embed.get("description"), 4096)
        _too_long(errors, f"{prefix}.footer.text", (embed.get("footer") or {}).get("text"), 2048)
        _too_long(errors, f"{prefix}.author.name", (embed.get("author") or {}).get("name"), 256)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors[f"{prefix}.fields"] = field_error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for j, item in enumerate(fields):
            _too_long(errors, f"{prefix}.fields.{j}.name", item.get("name"), 256)
            _too_long(errors, f"{prefix}.fields.{j}.value", item.get("value"), 1024)
            if not item.get("name") or not item.get("value"):
                errors[f"{prefix}.fields.{j}"] = field_error("BASE_TYPE_REQUIRED", "This field is required")
        total += sum(len(t) for t in embed_text(embed))
    if total > 6000:
        errors["embeds"] = field_error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _component_errors(errors: Json, components: Sequence[Json]) -> None:
    top_level = [c for c in components if c.get("type") == 1]
    if len(top_level) > 5:
        errors["components"] = field_error("BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    for i, row in enumerate(top_level):
        children = row.get("components") or []
        if len(children) > 5 or not children:
            errors[f"components.{i}.components"] = field_error(
                "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )
    seen: set[str] = set()
    for component in walk_components(components):
        custom_id = component.get("custom_id")
        _too_long(errors, "components.custom_id", custom_id, 100)
        if isinstance(custom_id, str):
            if custom_id in seen:
                errors["components.custom_id"] = field_error(
                    "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id duplicated"
                )
            seen.add(custom_id)
        _too_long(errors, "components.label", component.get("label"), 80)
        if component.get("type") == 2 and component.get("style") not in (5, 6) and not custom_id:
            errors["components.custom_id"] = field_error("BASE_TYPE_REQUIRED", "This field is required")
        options = component.get("options") or []
        if len(options) > 25:
            errors["components.options"] = field_error(
                "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        for option in options:
            _too_long(errors, "components.options.label", option.get("label"), 100)
            _too_long(errors, "components.options.value", option.get("value"), 100)


def message_errors(data: Mapping[str, Any], *, creating: bool) -> web.Response | None:
    """A 400 response when ``data`` breaks Discord's message limits, else None."""
    errors: Json = {}
    _too_long(errors, "content", data.get("content"), 2000)
    _embed_errors(errors, data.get("embeds") or [])
    _component_errors(errors, data.get("components") or [])
    if errors:
        return form_error(errors)
    if creating:
        keys = ("content", "embeds", "components", "attachments", "sticker_ids", "poll")
        if not any(data.get(k) for k in keys):
            return error(400, "Cannot send an empty message", 50006)
    return None


def choices_errors(data: Mapping[str, Any]) -> web.Response | None:
    errors: Json = {}
    choices = data.get("choices")
    if not isinstance(choices, list):
        errors["choices"] = field_error("BASE_TYPE_REQUIRED", "This field is required")
    elif len(choices) > 25:
        errors["choices"] = field_error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    else:
        for i, choice in enumerate(choices):
            name = choice.get("name") if isinstance(choice, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 100:
                errors[f"choices.{i}.name"] = field_error(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
            value = choice.get("value") if isinstance(choice, dict) else None
            _too_long(errors, f"choices.{i}.value", value, 100)
    return form_error(errors) if errors else None


def modal_errors(data: Mapping[str, Any]) -> web.Response | None:
    errors: Json = {}
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 45:
        errors["title"] = field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        errors["custom_id"] = field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        errors["components"] = field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
    for component in walk_components(components):
        _too_long(errors, "components.label", component.get("label"), 45)
    return form_error(errors) if errors else None
