"""Interactions that another worker's bot must run: keep the raw payload, forward it, run it.

The seam (docs/SCALING.md, "Forwarding"): each bot's `ConnectionState.parsers["INTERACTION_CREATE"]`
(the function discord.py's gateway calls with the event's raw `d`) is wrapped so that the raw
payload is in a context variable while discord.py parses it. The tasks discord.py starts from
there (the command tree's invoker, a view's callback) copy that context, so a command that turns
out to need a bot of another worker (`ActsElsewhere`, raised by the router before anything was
answered) finds the exact payload to forward, without discord.py keeping it anywhere. The worker
that runs the acting bot feeds the payload to that bot's client with
`client._connection.parse_interaction_create(payload)`, marked as forwarded (never forwarded
again), and the command runs unchanged.

Answering needs no bot token: discord.py answers through `/interactions/{id}/{token}/callback`
and `/webhooks/{application_id}/{token}`, taking the application id from the interaction payload
(`Interaction.application_id`), not from the client, so bot B answers an interaction sent to
application A correctly (checked in discord.py 2.7: `Interaction.followup`,
`edit_original_response`, `delete_original_response` all use `self.application_id`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from pymongo.errors import PyMongoError

from app.bots.status import BotState
from app.music.errors import BotNotResponding
from app.music.language import language
from app.music.replies import reply_error

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

# A forwarded interaction spent up to the claim window (1.5 s) of Discord's 3 s on the way: the
# acting bot defers anything that takes longer than this.
FORWARDED_ANSWER_DEADLINE = 0.5
# Persistent components name their bot: `chorus:<kind>:<bot_id>:<guild_id>[:<extra>]`.
_CUSTOM_ID = re.compile(r"^chorus:[a-z_-]+:(?P<bot>\d{1,20}):(?P<guild>\d{1,20})(?::|$)")


def not_responding(interaction: discord.Interaction) -> str:
    """The "that bot is not responding" answer, in the reader's language."""
    return BotNotResponding().render(language(interaction))


@dataclass(frozen=True, slots=True)
class Inbound:
    """The interaction being handled in this context, as the gateway delivered it."""

    payload: dict[str, Any]
    forwarded: bool  # fed by another worker: it is never forwarded again
    # Forwarded after the receiving bot deferred it (public: its placeholder is public).
    deferred: bool = False
    public_defer: bool = False


_INBOUND: ContextVar[Inbound | None] = ContextVar("chorus_inbound_interaction", default=None)


def inbound() -> Inbound | None:
    return _INBOUND.get()


def component_bot(payload: dict[str, Any]) -> int | None:
    """The bot a component interaction's custom id names, if it is one of ours."""
    if payload.get("type") != 3:
        return None
    data = payload.get("data")
    custom_id = data.get("custom_id") if isinstance(data, dict) else None
    match = _CUSTOM_ID.match(custom_id) if isinstance(custom_id, str) else None
    return int(match["bot"]) if match else None


def keep_raw_interactions(
    client: discord.Client, intercept: Callable[[discord.Client, dict[str, Any]], bool]
) -> None:
    """Wrap the client's INTERACTION_CREATE parser: `intercept` may take the payload away (a
    component of a bot another worker runs); otherwise discord.py parses it with the raw payload
    in context."""
    state = client._connection  # pyright: ignore[reportPrivateUsage]  # the parser table the gateway uses
    parse = state.parsers["INTERACTION_CREATE"]

    def parse_interaction_create(data: dict[str, Any]) -> None:
        if intercept(client, data):
            return
        token = _INBOUND.set(Inbound(data, forwarded=False))
        try:
            parse(data)
        finally:
            _INBOUND.reset(token)

    state.parsers["INTERACTION_CREATE"] = parse_interaction_create


def run_forwarded(
    client: discord.Client, payload: dict[str, Any], *, deferred: bool = False, public_defer: bool = False
) -> None:
    """Run a forwarded interaction on `client` as if its gateway had delivered it."""
    token = _INBOUND.set(Inbound(payload, forwarded=True, deferred=deferred, public_defer=public_defer))
    try:
        client._connection.parse_interaction_create(payload)  # pyright: ignore[reportPrivateUsage, reportArgumentType]  # the seam
    finally:
        _INBOUND.reset(token)


class Forwarder:
    """This worker's side of forwarding (owned by the `BotManager`)."""

    def __init__(self, manager: BotManager) -> None:
        self._manager = manager
        self._background: set[asyncio.Task[None]] = set()

    def install(self, client: discord.Client) -> None:
        keep_raw_interactions(client, self._intercept_component)

    # -- receiving --------------------------------------------------------------------------------

    def _elsewhere(self, bot_id: int) -> str | None:
        """The live worker other than this one that runs the bot, or None."""
        fleet = self._manager.fleet
        owner = fleet.owner_of(bot_id)
        return owner.id if owner is not None and owner.id != fleet.me else None

    async def forward(self, interaction: discord.Interaction, bot_id: int) -> None:
        """A command needs bot `bot_id` of another worker: hand it over, or answer that the bot is
        not responding (not claimed in time, or already forwarded once). An interaction this bot
        already deferred (a `/play` that lost the race for the channel after a slow search) goes
        over as deferred: the acting bot answers with a followup."""
        current = inbound()
        target = self._elsewhere(bot_id)
        if current is None or current.forwarded or target is None:
            await reply_error(interaction, not_responding(interaction))
            return
        deferred = interaction.response.is_done()
        public = deferred and bool(interaction.extras.get("public_defer"))
        if not await self._forward(bot_id, target, current.payload, deferred=deferred, public_defer=public):
            await reply_error(interaction, not_responding(interaction))

    async def _forward(
        self,
        bot_id: int,
        target: str,
        payload: dict[str, Any],
        *,
        deferred: bool = False,
        public_defer: bool = False,
    ) -> bool:
        try:
            return await self._manager.fleet.relay.forward(
                target_bot=bot_id,
                target_worker=target,
                payload=payload,
                deferred=deferred,
                public_defer=public_defer,
            )
        except PyMongoError as exc:
            _log.warning("Forwarding an interaction to bot %d failed (%s)", bot_id, exc)
            return False

    def _intercept_component(self, client: discord.Client, payload: dict[str, Any]) -> bool:
        """A button or menu naming a bot that another worker runs goes there before discord.py
        dispatches it here."""
        bot_id = component_bot(payload)
        if bot_id is None or (client.user is not None and bot_id == client.user.id):
            return False
        target = self._elsewhere(bot_id)
        if target is None:
            return False
        task = asyncio.create_task(self._forward_component(client, bot_id, target, payload),
                                   name=f"forward-component-{bot_id}")  # fmt: skip
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    async def _forward_component(
        self, client: discord.Client, bot_id: int, target: str, payload: dict[str, Any]
    ) -> None:
        if await self._forward(bot_id, target, payload):
            return
        interaction = discord.Interaction(data=payload, state=client._connection)  # pyright: ignore[reportPrivateUsage, reportArgumentType]
        await reply_error(interaction, not_responding(interaction))

    # -- acting -----------------------------------------------------------------------------------

    def can_take(self, bot_id: int) -> bool:
        runner = self._manager.get_runner(bot_id)
        return runner is not None and runner.state is BotState.READY and runner.client is not None

    def take(self, bot_id: int, payload: dict[str, Any], *, deferred: bool, public_defer: bool) -> None:
        runner = self._manager.get_runner(bot_id)
        if runner is None or runner.client is None:
            raise RuntimeError(f"bot {bot_id} does not run here")
        run_forwarded(runner.client, payload, deferred=deferred, public_defer=public_defer)
