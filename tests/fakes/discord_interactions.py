"""Interactions and messages of the fake Discord (mixed into :class:`tests.fakes.discord.FakeDiscord`).

Covers what discord.py 2.7 does for application commands, autocomplete, buttons, selects and
modals: ``INTERACTION_CREATE`` dispatches, the unauthenticated webhook calls an interaction
answers with (``POST /interactions/{id}/{token}/callback?with_response=1``,
``/webhooks/{application_id}/{token}[/messages/{id|@original}]``), and the bot's own channel
and DM messages (``/channels/{id}/messages``, ``/users/@me/channels``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_payloads import (
    ATTACHMENT_SIZE_LIMIT,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_LOADING,
    SELECT_TYPES,
    FakeMessage,
    FakeUser,
    Json,
    Permission,
    choices_errors,
    error,
    field_error,
    form_error,
    json_response,
    message_errors,
    modal_errors,
    new_snowflake,
    number_components,
)

if TYPE_CHECKING:
    from .discord import FakeBot, FakeGuild

__all__ = ["FakeInteraction", "InteractionsMixin"]

_CALLBACK = re.compile(r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback")
_WEBHOOK = re.compile(r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)")
_WEBHOOK_MESSAGE = re.compile(r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)")
_CHANNEL = r"/channels/(?P<channel>\d+)"
_TRUE = frozenset({"1", "true", "True"})

# Interaction type -> callback types Discord accepts for it.
_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    1: frozenset({1}),
    2: frozenset({4, 5, 9}),
    3: frozenset({4, 5, 6, 7, 9}),
    4: frozenset({8}),
    5: frozenset({4, 5, 6, 7}),
}
_MESSAGE_CALLBACKS = frozenset({4, 5, 6, 7})
# Select component type (user, role, mentionable, channel) -> option type of its values.
_SELECT_OPTION_TYPES = {5: 6, 6: 8, 7: 9, 8: 7}
# Python type -> application command option type, when the caller gives a bare value.
_OPTION_TYPES: tuple[tuple[type, int], ...] = ((bool, 5), (int, 4), (float, 10), (str, 3))

_RestHandler = Callable[["FakeBot", "re.Match[str]", Any], web.Response]


@dataclass(eq=False)
class FakeInteraction:
    """One interaction sent to a bot and everything the bot answered.

    As on Discord, the first followup after a deferred (type 5) response fills in the
    "thinking..." original: that message is then both ``original`` and ``followups[0]``.
    """

    id: int
    token: str
    bot: FakeBot
    user: FakeUser
    type: int  # 2 command, 3 component, 4 autocomplete, 5 modal submit
    data: Json
    guild_id: int | None
    channel_id: int
    payload: Json = field(repr=False)
    fake: InteractionsMixin = field(repr=False)
    # The message a component (or a modal opened from one) belongs to.
    message: FakeMessage | None = None
    # Callback payloads ({"type": ..., "data": ...}) in order; Discord accepts only one.
    responses: list[Json] = field(default_factory=list)
    followups: list[FakeMessage] = field(default_factory=list)
    # Created by callback 4/5, or the component's message after callback 6/7.
    original: FakeMessage | None = None
    created_at: float = field(default_factory=time.monotonic)

    @property
    def acknowledged(self) -> bool:
        return bool(self.responses)

    @property
    def response_type(self) -> int | None:
        return self.responses[0]["type"] if self.responses else None

    @property
    def messages(self) -> list[FakeMessage]:
        """The original response and the followups, not deleted, without duplicates."""
        found: list[FakeMessage] = []
        for message in [self.original, *self.followups]:
            if message is not None and not message.deleted and message not in found:
                found.append(message)
        return found

    @property
    def ephemeral(self) -> bool:
        if self.responses:
            data = self.responses[0].get("data") or {}
            if int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL:
                return True
        return any(m.ephemeral for m in self.messages[:1])

    @property
    def text(self) -> str:
        """The flattened text of every message of this interaction (see :attr:`FakeMessage.text`)."""
        return "\n".join(m.text for m in self.messages if m.text)

    @property
    def modal(self) -> Json | None:
        return self._response_data(9)

    @property
    def choices(self) -> list[Json] | None:
        data = self._response_data(8)
        return None if data is None else list(data.get("choices") or [])

    def _response_data(self, callback_type: int) -> Json | None:
        for response in self.responses:
            if response["type"] == callback_type:
                return dict(response.get("data") or {})
        return None

    async def wait_for_response(self, timeout: float = 30.0) -> Json:
        """The first callback the bot sent ({"type": ..., "data": ...})."""
        await self.fake._wait_until(
            lambda: bool(self.responses), timeout, f"a response to interaction {self.id}"
        )
        return self.responses[0]

    async def wait_for_message(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 30.0
    ) -> FakeMessage:
        """The first of original/followups that has a body (not "thinking...") and matches ``predicate``."""
        found: list[FakeMessage] = []

        def ready() -> bool:
            for message in self.messages:
                if not message.loading and message.has_body and (predicate is None or predicate(message)):
                    found.append(message)
                    return True
            return False

        await self.fake._wait_until(ready, timeout, f"a message from interaction {self.id}")
        return found[0]


def _option_type(value: Any) -> int:
    for python_type, option_type in _OPTION_TYPES:
        if isinstance(value, python_type):
            return option_type
    raise TypeError(f"cannot infer the option type of {value!r}; pass {{'name', 'type', 'value'}}")


def _find_schema(options: Sequence[Json], path: Sequence[str]) -> list[Json]:
    """The option schema of the (sub)command at ``path`` inside a registered command's options."""
    for name in path:
        match = next((o for o in options if o.get("name") == name and o.get("type") in (1, 2)), None)
        if match is None:
            return []
        options = match.get("options") or []
    return list(options)


class InteractionsMixin:
    """Interaction and message state + REST handlers; FakeDiscord inherits this."""

    if TYPE_CHECKING:
        bots: dict[int, FakeBot]
        guilds: dict[int, FakeGuild]
        users: dict[int, FakeUser]
        _commands: dict[tuple[int, int | None], list[Json]]

        def _guild(self, guild_id: int) -> FakeGuild: ...

        async def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None: ...

        async def dispatch(self, bot: FakeBot, event: str, data: Json) -> int: ...

        def _user_json(self, user_id: int) -> Json: ...

        def _ensure_member(self, guild: FakeGuild, user: FakeUser | FakeBot) -> None: ...

        def _broadcast_soon(self, guild_id: int, event: str, data: Json) -> None: ...

    def _init_interactions(self) -> None:
        self.interactions: list[FakeInteraction] = []
        self.channel_messages: defaultdict[int, list[FakeMessage]] = defaultdict(list)
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._messages: dict[int, FakeMessage] = {}  # every message, by id
        self._dm_channels: dict[int, tuple[int, int]] = {}  # dm channel id -> (bot id, user id)
        self._rejected_channels: dict[int, int] = {}  # channel id -> error code
        self._dm_blocked_users: set[int] = set()
        # Discord's 3 s: a first response later than this is refused with 10062 (None: no limit;
        # off by default so a loaded machine does not fail unrelated tests).
        self.interaction_deadline: float | None = None
        self._odd_callbacks = 0
        self.voice_status_updates: list[tuple[int, str | None]] = []  # (channel, status) accepted

    def answer_callbacks_oddly(self, times: int = 1) -> None:
        """Accept the next ``times`` interaction callbacks but answer them with a plain-text body
        instead of the JSON ``?with_response=1`` asks for: discord.py raises a TypeError parsing
        it after the response went through (seen against Discord-compatible servers)."""
        self._odd_callbacks += times

    def _message_routes(self) -> list[tuple[str, re.Pattern[str], _RestHandler]]:
        message = re.compile(_CHANNEL + r"/messages/(?P<message>\d+)")
        return [
            ("POST", re.compile(_CHANNEL + "/messages"), self._rest_post_message),
            ("GET", message, self._rest_get_message),
            ("PATCH", message, self._rest_edit_message),
            ("DELETE", message, self._rest_delete_message),
            ("GET", re.compile(_CHANNEL), self._rest_get_channel),
            ("PUT", re.compile(_CHANNEL + "/voice-status"), self._rest_put_voice_status),
            ("POST", re.compile(r"/users/@me/channels"), self._rest_create_dm),
            ("GET", re.compile(r"/users/(?P<user>\d+)"), self._rest_get_user),
        ]

    # ------------------------------------------------------------------ test hooks: messages

    def reject_messages(self, channel_id: int, *, code: int | None = None) -> None:
        """Answer the bot's messages to ``channel_id`` with a 403 (50001, or 50007 for a DM)."""
        if code is None:
            code = 50007 if channel_id in self._dm_channels else 50001
        self._rejected_channels[channel_id] = code

    def accept_messages(self, channel_id: int) -> None:
        self._rejected_channels.pop(channel_id, None)

    def block_dms(self, user: FakeUser | int) -> None:
        """Messages to any DM with ``user`` fail with 403 50007 (DMs closed / bot blocked)."""
        self._dm_blocked_users.add(user if isinstance(user, int) else user.id)

    def unblock_dms(self, user: FakeUser | int) -> None:
        self._dm_blocked_users.discard(user if isinstance(user, int) else user.id)

    def dm_channel_id(self, bot: FakeBot, user: FakeUser | int) -> int | None:
        user_id = user if isinstance(user, int) else user.id
        return next((c for c, pair in self._dm_channels.items() if pair == (bot.client_id, user_id)), None)

    def dm_messages(self, user: FakeUser | int) -> list[FakeMessage]:
        user_id = user if isinstance(user, int) else user.id
        channels = [c for c, (_, uid) in self._dm_channels.items() if uid == user_id]
        return [m for c in channels for m in self.channel_messages.get(c, [])]

    async def wait_for_channel_message(
        self,
        channel_id: int,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 30.0,
    ) -> FakeMessage:
        """The first (oldest) not-deleted message in the channel matching ``predicate``; waits for it."""
        return await self._wait_for_message(
            lambda: self.channel_messages.get(channel_id, []),
            predicate,
            timeout,
            f"a message in {channel_id}",
        )

    async def wait_for_dm(
        self,
        user: FakeUser | int,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 30.0,
    ) -> FakeMessage:
        return await self._wait_for_message(
            lambda: self.dm_messages(user), predicate, timeout, f"a DM to {user}"
        )

    async def _wait_for_message(
        self,
        candidates: Callable[[], list[FakeMessage]],
        predicate: Callable[[FakeMessage], bool] | None,
        timeout: float,
        what: str,
    ) -> FakeMessage:
        found: list[FakeMessage] = []

        def ready() -> bool:
            for message in candidates():
                if not message.deleted and (predicate is None or predicate(message)):
                    found.append(message)
                    return True
            return False

        await self._wait_until(ready, timeout, what)
        return found[0]

    # ------------------------------------------------------------------ sending interactions

    async def send_command(
        self,
        bot: FakeBot,
        *,
        guild_id: int,
        channel_id: int,
        user: FakeUser,
        name: str,
        options: Sequence[Json] | Mapping[str, Any] | None = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs ``/name [subcommand_group] [subcommand] options...`` (INTERACTION_CREATE type 2).

        ``options`` is Discord's list (``[{"name": "query", "type": 3, "value": "foo"}]``) or a plain
        ``{"query": "foo"}`` mapping; a missing ``type`` comes from the registered command, else from
        the Python type.  Raises PermissionError if the command's ``default_member_permissions``
        hide it from the user (Discord would not send the interaction).
        """
        data = self._command_data(bot, guild_id, user, name, options, subcommand, subcommand_group, None)
        return await self._send_interaction(bot, 2, guild_id, channel_id, user, data, locale=locale)

    async def send_autocomplete(
        self,
        bot: FakeBot,
        *,
        guild_id: int,
        channel_id: int,
        user: FakeUser,
        name: str,
        focused: str,
        options: Sequence[Json] | Mapping[str, Any] | None = None,
        subcommand: str | None = None,
        subcommand_group: str | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """The user types into option ``focused`` (INTERACTION_CREATE type 4); see ``.choices``."""
        data = self._command_data(bot, guild_id, user, name, options, subcommand, subcommand_group, focused)
        return await self._send_interaction(bot, 4, guild_id, channel_id, user, data, locale=locale)

    async def click_button(
        self, bot: FakeBot, message: FakeMessage, custom_id: str, *, user: FakeUser, locale: str = "en-US"
    ) -> FakeInteraction:
        """The user clicks the button ``custom_id`` of ``message`` (INTERACTION_CREATE type 3)."""
        component = self._clickable(bot, message, custom_id, (2,))
        data: Json = {"custom_id": custom_id, "component_type": 2, "id": component.get("id")}
        return await self._send_interaction(
            bot, 3, message.guild_id, message.channel_id, user, data, message=message, locale=locale
        )

    async def select(
        self,
        bot: FakeBot,
        message: FakeMessage,
        custom_id: str,
        values: Sequence[str],
        *,
        user: FakeUser,
        forged: bool = False,
    ) -> FakeInteraction:
        """The user picks ``values`` in the select menu ``custom_id`` of ``message`` (type 3).

        ``forged``: send them even if they are not options of the menu, as a client other than
        Discord's may (Discord's API does not check them).
        """
        component = self._clickable(bot, message, custom_id, tuple(SELECT_TYPES))
        values = [str(v) for v in values]
        low, high = int(component.get("min_values", 1)), int(component.get("max_values", 1))
        if not low <= len(values) <= high and not forged:
            raise ValueError(f"select {custom_id!r} takes {low}..{high} values, not {len(values)}")
        component_type = int(component["type"])
        if component_type == 3 and not forged:
            offered = {str(o.get("value")) for o in component.get("options") or []}
            if not set(values) <= offered:
                raise ValueError(f"values {sorted(set(values) - offered)} are not options of {custom_id!r}")
        data: Json = {"custom_id": custom_id, "component_type": component_type, "values": values}
        data["id"] = component.get("id")
        if component_type != 3 and message.guild_id is not None:
            option_type = _SELECT_OPTION_TYPES[component_type]
            items = [(option_type, v) for v in values]
            data["resolved"] = self._resolved(self._guild(message.guild_id), items, user.id)
        return await self._send_interaction(
            bot, 3, message.guild_id, message.channel_id, user, data, message=message
        )

    async def submit_modal(
        self,
        bot: FakeBot,
        *,
        interaction: FakeInteraction,
        values: Mapping[str, str | Sequence[str]],
        custom_id: str | None = None,
        user: FakeUser | None = None,
    ) -> FakeInteraction:
        """The user submits the modal ``interaction`` opened (INTERACTION_CREATE type 5).

        ``values`` maps text input (or select) custom ids to what the user entered.
        """
        modal = interaction.modal
        if modal is None:
            raise ValueError(f"interaction {interaction.id} did not open a modal")
        components = _modal_submission(modal.get("components") or [], values)
        data: Json = {"custom_id": custom_id or modal.get("custom_id"), "components": components}
        return await self._send_interaction(
            bot,
            5,
            interaction.guild_id,
            interaction.channel_id,
            user or interaction.user,
            data,
            message=interaction.message,
        )

    def _clickable(self, bot: FakeBot, message: FakeMessage, custom_id: str, types: tuple[int, ...]) -> Json:
        if message.deleted:
            raise ValueError(f"message {message.id} was deleted")
        if int(message.author.get("id", 0)) != bot.client_id and message.application_id != bot.client_id:
            raise ValueError(f"message {message.id} does not belong to bot {bot.name}")
        component = message.component(custom_id)
        if component is None or component.get("type") not in types:
            raise ValueError(f"message {message.id} has no component {custom_id!r} of type {types}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        return component

    def _registered_command(self, bot: FakeBot, guild_id: int, name: str) -> tuple[Json | None, bool]:
        """(the registered command, whether it is a guild command)."""
        for scope, is_guild in (((bot.client_id, guild_id), True), ((bot.client_id, None), False)):
            for command in self._commands.get(scope, []):
                if command.get("name") == name and command.get("type", 1) == 1:
                    return command, is_guild
        return None, False

    def _command_data(
        self,
        bot: FakeBot,
        guild_id: int,
        user: FakeUser,
        name: str,
        options: Sequence[Json] | Mapping[str, Any] | None,
        subcommand: str | None,
        subcommand_group: str | None,
        focused: str | None,
    ) -> Json:
        guild = self._guild(guild_id)
        command, is_guild = self._registered_command(bot, guild_id, name)
        if command is not None:
            self._check_command_permissions(guild, user, command)
        path = [p for p in (subcommand_group, subcommand) if p]
        schema = _find_schema((command or {}).get("options") or [], path)
        leaf = _normalize_options(options, schema, focused)
        nested: list[Json] = leaf
        if subcommand is not None:
            nested = [{"name": subcommand, "type": 1, "options": nested}]
        if subcommand_group is not None:
            nested = [{"name": subcommand_group, "type": 2, "options": nested}]
        data: Json = {
            "id": command["id"] if command is not None else str(new_snowflake()),
            "name": name,
            "type": 1,
        }
        if nested:
            data["options"] = nested
        if is_guild:
            data["guild_id"] = str(guild_id)
        resolvable = [
            (o["type"], o["value"]) for o in leaf if o["type"] in (6, 7, 8, 9) and not o.get("focused")
        ]
        if resolvable:
            data["resolved"] = self._resolved(guild, resolvable, user.id)
        return data

    def _check_command_permissions(self, guild: FakeGuild, user: FakeUser, command: Json) -> None:
        required = command.get("default_member_permissions")
        if required is None:
            return
        member = guild.members.get(user.id)
        perms = guild.permissions_of(user.id) if member is not None else 0
        if perms & Permission.ADMINISTRATOR or (
            int(required) != 0 and perms & int(required) == int(required)
        ):
            return
        raise PermissionError(f"/{command['name']} is hidden from {user.name} (needs {required})")

    def _resolved(self, guild: FakeGuild, items: Sequence[tuple[int, Any]], viewer_id: int) -> Json:
        """``resolved`` data for user (6), channel (7), role (8) and mentionable (9) option values."""
        resolved: Json = {}
        for option_type, value in items:
            ident = int(value)
            is_user = ident in self.users or ident in self.bots
            if option_type == 6 or (option_type == 9 and is_user):
                if not is_user:
                    raise ValueError(f"unknown user {ident}")
                resolved.setdefault("users", {})[str(ident)] = self._user_json(ident)
                member = guild.members.get(ident)
                if member is not None:
                    payload = member.payload(self._user_json(ident), permissions=guild.permissions_of(ident))
                    del payload["user"]
                    resolved.setdefault("members", {})[str(ident)] = payload
            elif option_type in (8, 9):
                role = guild.role(ident)
                if role is None:
                    raise ValueError(f"unknown role {ident}")
                resolved.setdefault("roles", {})[str(ident)] = dict(role)
            elif option_type == 7:
                if guild.channel(ident) is None:
                    raise ValueError(f"unknown channel {ident}")
                channel = guild.channel_payload(ident)
                channel["permissions"] = str(guild.permissions_of(viewer_id, ident))
                resolved.setdefault("channels", {})[str(ident)] = channel
        return resolved

    async def _send_interaction(
        self,
        bot: FakeBot,
        interaction_type: int,
        guild_id: int | None,
        channel_id: int,
        user: FakeUser,
        data: Json,
        *,
        message: FakeMessage | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        if guild_id is None:
            raise ValueError("the fake only sends guild interactions")
        guild = self._guild(guild_id)
        if guild_id not in bot.guild_ids:
            raise ValueError(f"bot {bot.name} is not in guild {guild_id}")
        if guild.channel(channel_id) is None:
            raise ValueError(f"guild {guild_id} has no channel {channel_id}")
        if user.id not in self.users:
            self.users[user.id] = user
        self._ensure_member(guild, user)
        member = guild.members[user.id]
        user_perms = guild.permissions_of(user.id, channel_id)
        channel = guild.channel_payload(channel_id)
        channel["permissions"] = str(user_perms)
        token = "fake-interaction-" + secrets.token_urlsafe(48)
        interaction_id = new_snowflake()
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(bot.client_id),
            "type": interaction_type,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": guild.preferred_locale, "features": []},
            "channel_id": str(channel_id),
            "channel": channel,
            "member": member.payload(user.user_payload(), permissions=user_perms),
            "token": token,
            "version": 1,
            "app_permissions": str(guild.permissions_of(bot.client_id, channel_id)),
            "locale": locale,
            "guild_locale": guild.preferred_locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if message is not None:
            payload["message"] = message.to_payload()
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            bot=bot,
            user=user,
            type=interaction_type,
            data=data,
            guild_id=guild_id,
            channel_id=channel_id,
            payload=payload,
            fake=self,
            message=message,
        )
        self.interactions.append(interaction)
        self._interactions_by_token[token] = interaction
        if not await self.dispatch(bot, "INTERACTION_CREATE", payload):
            raise RuntimeError(f"bot {bot.name} has no gateway session to receive the interaction")
        return interaction

    # ------------------------------------------------------------------ webhook REST (no bot auth)

    def _webhook_route(
        self, method: str, path: str, body: Any, query: Mapping[str, str]
    ) -> tuple[FakeInteraction | None, web.Response] | None:
        """Interaction callbacks and interaction webhooks, authorised by the token in the path."""
        match = _CALLBACK.fullmatch(path)
        if match is not None:
            interaction = self._interactions_by_token.get(match["token"])
            if interaction is None or interaction.id != int(match["id"]):
                return None, error(404, "Unknown interaction", 10062)
            if method != "POST":
                return interaction, error(405, "405: Method Not Allowed")
            return interaction, self._callback(interaction, body, query)
        match = _WEBHOOK_MESSAGE.fullmatch(path) or _WEBHOOK.fullmatch(path)
        if match is None:
            return None
        interaction = self._interactions_by_token.get(match["token"])
        if interaction is None or interaction.bot.client_id != int(match["app"]):
            return None, error(404, "Unknown Webhook", 10015)
        if "message" in match.groupdict():
            return interaction, self._webhook_message(interaction, method, match["message"], body)
        if method != "POST":
            return interaction, error(405, "405: Method Not Allowed")
        return interaction, self._followup(interaction, body, query)

    def _new_message(
        self, interaction: FakeInteraction, data: Mapping[str, Any], **extra: Any
    ) -> FakeMessage:
        bot = interaction.bot
        message = FakeMessage.create(
            data,
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            author=bot.user_payload(),
            type=20 if interaction.type == 2 else 19,
            webhook_id=bot.client_id,
            application_id=bot.client_id,
            interaction_metadata={
                "id": str(interaction.id),
                "type": interaction.type,
                "user": interaction.user.user_payload(),
                "authorizing_integration_owners": {"0": str(interaction.guild_id)},
                **({"name": interaction.data.get("name")} if interaction.type == 2 else {}),
            },
            **extra,
        )
        self._messages[message.id] = message
        return message

    def _callback(self, interaction: FakeInteraction, body: Any, query: Mapping[str, str]) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            return form_error({"type": field_error("BASE_TYPE_REQUIRED", "This field is required")})
        callback_type: int = body["type"]
        data: Json = dict(body.get("data") or {})
        if interaction.responses:
            return error(400, "Interaction has already been acknowledged.", 40060)
        deadline = self.interaction_deadline
        if deadline is not None and time.monotonic() - interaction.created_at > deadline:
            return error(404, "Unknown interaction", 10062)
        allowed = _ALLOWED_CALLBACKS.get(interaction.type, frozenset())
        if callback_type not in allowed or (callback_type in (6, 7) and interaction.message is None):
            errors = {"type": field_error("INTERACTION_CALLBACK_TYPE_INVALID", "Invalid type")}
            return form_error(errors)
        message: FakeMessage | None = None
        if callback_type == 4:
            rejected = message_errors(data, creating=True)
            if rejected is not None:
                return rejected
            message = self._new_message(interaction, data)
            interaction.original = message
        elif callback_type == 5:
            flags = (int(data.get("flags") or 0) & MESSAGE_FLAG_EPHEMERAL) | MESSAGE_FLAG_LOADING
            message = self._new_message(interaction, {}, flags=flags)
            interaction.original = message
        elif callback_type in (6, 7):
            message = interaction.message
            assert message is not None
            if callback_type == 7:
                rejected = message_errors(data, creating=False)
                if rejected is not None:
                    return rejected
                message.apply_edit(data)
            interaction.original = message
        elif callback_type == 8:
            rejected = choices_errors(data)
            if rejected is not None:
                return rejected
        elif callback_type == 9:
            rejected = modal_errors(data)
            if rejected is not None:
                return rejected
        interaction.responses.append({"type": callback_type, "data": data})
        if self._odd_callbacks > 0:
            self._odd_callbacks -= 1
            return web.Response(status=200, text="OK", content_type="text/plain")
        if query.get("with_response") not in _TRUE:
            return web.Response(status=204)
        info: Json = {"id": str(interaction.id), "type": interaction.type}
        result: Json = {"interaction": info}
        if message is not None:
            info["response_message_id"] = str(message.id)
            info["response_message_loading"] = message.loading
            info["response_message_ephemeral"] = message.ephemeral
            if callback_type in (4, 5, 7):
                result["resource"] = {"type": callback_type, "message": message.to_payload()}
        return json_response(result)

    def _followup(self, interaction: FakeInteraction, body: Any, query: Mapping[str, str]) -> web.Response:
        if interaction.response_type not in _MESSAGE_CALLBACKS:
            return error(404, "Unknown Webhook", 10015)
        data: Json = body if isinstance(body, dict) else {}
        rejected = message_errors(data, creating=True)
        if rejected is not None:
            return rejected
        original = interaction.original
        if original is not None and original.loading and interaction.response_type == 5:
            # Discord fills the "thinking..." message with the first followup after a defer.
            original.apply_edit(data)
            message = original
        else:
            message = self._new_message(interaction, data)
            if original is not None and message.interaction_metadata is not None:
                message.interaction_metadata["original_response_message_id"] = str(original.id)
        interaction.followups.append(message)
        if query.get("wait") not in _TRUE:
            return web.Response(status=204)
        return json_response(message.to_payload())

    def _webhook_message(
        self, interaction: FakeInteraction, method: str, ref: str, body: Any
    ) -> web.Response:
        if ref == "@original":
            message = interaction.original
        else:
            message = next((m for m in interaction.messages if m.id == int(ref)), None)
        if message is None or message.deleted:
            return error(404, "Unknown Message", 10008)
        if method == "GET":
            return json_response(message.to_payload())
        if method == "PATCH":
            return _edit(message, body)
        if method == "DELETE":
            message.deleted = True
            return web.Response(status=204)
        return error(405, "405: Method Not Allowed")

    # ------------------------------------------------------------------ channel REST (bot auth)

    def _find_channel(self, channel_id: int) -> tuple[FakeGuild | None, Json | None]:
        for guild in self.guilds.values():
            channel = guild.channel(channel_id)
            if channel is not None:
                return guild, channel
        return None, None

    def _writable_channel(self, bot: FakeBot, channel_id: int) -> int | web.Response | None:
        """The guild id (None for a DM) the bot may post to, or the error Discord answers with."""
        pair = self._dm_channels.get(channel_id)
        if pair is not None:
            if pair[0] != bot.client_id:
                return error(403, "Missing Access", 50001)
            if channel_id in self._rejected_channels or pair[1] in self._dm_blocked_users:
                code = self._rejected_channels.get(channel_id, 50007)
                return error(403, "Cannot send messages to this user", code)
            return None
        guild, channel = self._find_channel(channel_id)
        if guild is None or channel is None:
            return error(404, "Unknown Channel", 10003)
        if guild.id not in bot.guild_ids:
            return error(403, "Missing Access", 50001)
        perms = guild.permissions_of(bot.client_id, channel_id)
        if not perms & Permission.VIEW_CHANNEL:
            return error(403, "Missing Access", 50001)
        if not perms & Permission.SEND_MESSAGES:
            return error(403, "Missing Permissions", 50013)
        code = self._rejected_channels.get(channel_id)
        if code is not None:
            return error(403, "Missing Access" if code == 50001 else "Forbidden", code)
        return guild.id

    def _rest_post_message(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        channel_id = int(match["channel"])
        target = self._writable_channel(bot, channel_id)
        if isinstance(target, web.Response):
            return target
        data: Json = body if isinstance(body, dict) else {}
        rejected = message_errors(data, creating=True)
        if rejected is not None:
            return rejected
        message = FakeMessage.create(
            data,
            channel_id=channel_id,
            guild_id=target,
            author=bot.user_payload(),
            type=19 if data.get("message_reference") else 0,
            # Only SUPPRESS_EMBEDS / SUPPRESS_NOTIFICATIONS may be set when posting.
            flags=0,
        )
        message.flags &= (1 << 2) | (1 << 12)
        self.channel_messages[channel_id].append(message)
        self._messages[message.id] = message
        return json_response(message.to_payload())

    def _channel_message(self, bot: FakeBot, match: re.Match[str]) -> FakeMessage | web.Response:
        channel_id, message_id = int(match["channel"]), int(match["message"])
        pair = self._dm_channels.get(channel_id)
        guild, _ = self._find_channel(channel_id)
        if pair is not None and pair[0] != bot.client_id:
            return error(403, "Missing Access", 50001)
        if pair is None and guild is None:
            return error(404, "Unknown Channel", 10003)
        if guild is not None and guild.id not in bot.guild_ids:
            return error(403, "Missing Access", 50001)
        # Channel posts and (non-ephemeral) interaction responses alike.
        message = self._messages.get(message_id)
        if message is None or message.deleted or message.ephemeral or message.channel_id != channel_id:
            return error(404, "Unknown Message", 10008)
        return message

    def _rest_get_message(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        found = self._channel_message(bot, match)
        return found if isinstance(found, web.Response) else json_response(found.to_payload())

    def _rest_edit_message(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        found = self._channel_message(bot, match)
        if isinstance(found, web.Response):
            return found
        if int(found.author["id"]) != bot.client_id:
            return error(403, "Cannot edit a message authored by another user", 50005)
        return _edit(found, body)

    def _rest_delete_message(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        found = self._channel_message(bot, match)
        if isinstance(found, web.Response):
            return found
        if int(found.author["id"]) != bot.client_id and found.guild_id is not None:
            perms = self._guild(found.guild_id).permissions_of(bot.client_id, found.channel_id)
            if not perms & Permission.MANAGE_MESSAGES:
                return error(403, "Missing Permissions", 50013)
        found.deleted = True
        return web.Response(status=204)

    def _dm_payload(self, channel_id: int) -> Json:
        _, user_id = self._dm_channels[channel_id]
        return {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [self._user_json(user_id)],
        }

    def _rest_get_channel(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        channel_id = int(match["channel"])
        pair = self._dm_channels.get(channel_id)
        if pair is not None:
            if pair[0] != bot.client_id:
                return error(403, "Missing Access", 50001)
            return json_response(self._dm_payload(channel_id))
        guild, _ = self._find_channel(channel_id)
        if guild is None:
            return error(404, "Unknown Channel", 10003)
        if guild.id not in bot.guild_ids:
            return error(403, "Missing Access", 50001)
        return json_response(guild.channel_payload(channel_id))

    def _rest_put_voice_status(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        """Discord's voice channel status: the bot must be in the channel (or have Manage
        Channels) and have Set Voice Channel Status; up to 500 characters, null clears it."""
        channel_id = int(match["channel"])
        guild, channel = self._find_channel(channel_id)
        if guild is None or channel is None:
            return error(404, "Unknown Channel", 10003)
        if guild.id not in bot.guild_ids:
            return error(403, "Missing Access", 50001)
        if channel.get("type") != 2:
            return error(400, "Cannot execute action on this channel type", 50024)
        status = body.get("status") if isinstance(body, dict) else None
        if status is not None and (not isinstance(status, str) or len(status) > 500):
            return form_error(
                {"status": field_error("BASE_TYPE_MAX_LENGTH", "Must be 500 or fewer in length.")}
            )
        perms = guild.permissions_of(bot.client_id, channel_id)
        state = guild.voice_state(bot.client_id)
        in_channel = state is not None and int(state["channel_id"]) == channel_id
        if not perms & Permission.SET_VOICE_CHANNEL_STATUS or not (
            in_channel or perms & Permission.MANAGE_CHANNELS
        ):
            return error(403, "Missing Permissions", 50013)
        channel["status"] = status
        self.voice_status_updates.append((channel_id, status))
        payload: Json = {"id": str(channel_id), "guild_id": str(guild.id), "status": status}
        self._broadcast_soon(guild.id, "VOICE_CHANNEL_STATUS_UPDATE", payload)
        return web.Response(status=204)

    def voice_status(self, channel_id: int) -> str | None:
        """The status a voice channel shows now (None: none)."""
        _, channel = self._find_channel(channel_id)
        return None if channel is None else channel.get("status")

    def _rest_get_user(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        user_id = int(match["user"])
        if user_id not in self.users and user_id not in self.bots:
            return error(404, "Unknown User", 10013)
        return json_response(self._user_json(user_id))

    def _rest_create_dm(self, bot: FakeBot, match: re.Match[str], body: Any) -> web.Response:
        recipient = body.get("recipient_id") if isinstance(body, dict) else None
        try:
            user_id = int(recipient)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return form_error({"recipient_id": field_error("BASE_TYPE_REQUIRED", "This field is required")})
        if user_id not in self.users and user_id not in self.bots:
            return error(400, "Invalid Recipient(s)", 50033)
        channel_id = self.dm_channel_id(bot, user_id)
        if channel_id is None:
            channel_id = new_snowflake()
            self._dm_channels[channel_id] = (bot.client_id, user_id)
        return json_response(self._dm_payload(channel_id))


def _edit(message: FakeMessage, body: Any) -> web.Response:
    """A message edit (webhook or channel PATCH) as Discord takes it: refused whole if any field
    is off, else applied; answered with the edited message."""
    data: Json = body if isinstance(body, dict) else {}
    rejected = message_errors(data, creating=False)
    if rejected is not None:
        return rejected
    message.apply_edit(data)
    return json_response(message.to_payload())


def _normalize_options(
    options: Sequence[Json] | Mapping[str, Any] | None, schema: Sequence[Json], focused: str | None
) -> list[Json]:
    if options is None:
        items: list[Json] = []
    elif isinstance(options, Mapping):
        items = [{"name": str(k), "value": v} for k, v in options.items()]
    else:
        items = [dict(o) for o in options]
    types = {str(o.get("name")): int(o.get("type", 3)) for o in schema}
    if focused is not None and all(o.get("name") != focused for o in items):
        items.append({"name": focused, "value": ""})
    result: list[Json] = []
    for item in items:
        name = str(item["name"])
        value = item.get("value")
        option_type = item.get("type") or types.get(name)
        if option_type is None:
            option_type = _option_type(value)
        option: Json = {"name": name, "type": int(option_type), "value": value}
        if option["type"] in (6, 7, 8, 9) and not isinstance(value, str):
            option["value"] = str(value)
        if name == focused:
            option["focused"] = True
            option["value"] = "" if value is None else str(value)
        result.append(option)
    return result


def _submitted(component: Json, values: Mapping[str, str | Sequence[str]], used: set[str]) -> Json | None:
    custom_id = component.get("custom_id")
    component_type = component.get("type")
    if not isinstance(custom_id, str):
        return None
    used.add(custom_id)
    given = values.get(custom_id)
    if component_type == 4:
        value = given if isinstance(given, str) else str(component.get("value") or "")
        if component.get("required", True) and not value:
            raise ValueError(f"text input {custom_id!r} is required")
        low, high = component.get("min_length"), component.get("max_length")
        if value and ((low is not None and len(value) < low) or (high is not None and len(value) > high)):
            raise ValueError(f"text input {custom_id!r} must be {low}..{high} characters long")
        return {"type": 4, "id": component.get("id"), "custom_id": custom_id, "value": value}
    if component_type in SELECT_TYPES:
        picked = [given] if isinstance(given, str) else list(given or [])
        return {"type": component_type, "id": component.get("id"), "custom_id": custom_id, "values": picked}
    return None


def _modal_submission(components: Sequence[Json], values: Mapping[str, str | Sequence[str]]) -> list[Json]:
    """The ``components`` of a modal submit, mirroring the modal's rows / labels."""
    used: set[str] = set()
    submitted: list[Json] = []
    for component in number_components(components):
        ident = component["id"]
        if component.get("type") == 1:
            children = [_submitted(c, values, used) for c in component.get("components") or []]
            submitted.append({"type": 1, "id": ident, "components": [c for c in children if c is not None]})
        elif component.get("type") == 18:
            child = component.get("component")
            inner = _submitted(child, values, used) if isinstance(child, dict) else None
            if inner is not None:
                submitted.append({"type": 18, "id": ident, "component": inner})
        elif component.get("type") == 10:
            submitted.append({"type": 10, "id": ident})
    unknown = set(values) - used
    if unknown:
        raise ValueError(f"the modal has no inputs {sorted(unknown)}")
    return submitted
