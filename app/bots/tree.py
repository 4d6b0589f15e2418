"""The command tree of every bot: one error handler that answers the user and logs, and the one
place every application command is counted and timed (`chorus_interactions_total`,
`chorus_interaction_seconds`) and named in the logs (guild, command)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.interactions import InteractionResponse

from app import log_context
from app.bots.forwarding import FORWARDED_ANSWER_DEADLINE, inbound, not_responding
from app.i18n import text
from app.metrics import InteractionOutcome, observe_interaction
from app.music.errors import AllBotsBusy, MusicError
from app.music.fleet import ActsElsewhere
from app.music.language import language, remember_language
from app.music.replies import UNEXPECTED_KEY, describe, reply_error

if TYPE_CHECKING:
    from app.bots.forwarding import Forwarder

_log = logging.getLogger(__name__)

_DISPATCHED = "chorus_dispatched"  # interaction.extras keys: when the tree got it, and whether
_COUNTED = "chorus_counted"  # it has been counted (exactly once per command)


class _TimedResponse(InteractionResponse[Any]):
    """discord.py's interaction response, noting when the first answer went out.

    Every way of answering (a message, a defer, an edit, a modal) ends by setting
    `_response_type` once Discord took the answer; watching that one attribute times all of
    them without re-declaring each method.
    """

    __slots__ = ("answered_at",)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_response_type" and value is not None and getattr(self, "answered_at", None) is None:
            object.__setattr__(self, "answered_at", time.monotonic())
        super().__setattr__(name, value)


def _command_name(interaction: discord.Interaction) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "unknown"


class ChorusTree(app_commands.CommandTree[discord.Client]):
    # Set by the bot's client in a fleet (None: a tree that never forwards, e.g. deploy-commands).
    forwarder: Forwarder | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Runs first for every application command (and autocomplete) this bot receives."""
        if interaction.type is discord.InteractionType.application_command:
            interaction.extras[_DISPATCHED] = time.monotonic()
            # Before anything answers: the first answer is then timed (see _TimedResponse).
            interaction._cs_response = _TimedResponse(interaction)  # pyright: ignore[reportAttributeAccessIssue]  # discord.py's cached slot
        current = inbound()
        if current is not None and current.forwarded:
            # Part of Discord's 3 s went on the way here: answer (or defer) sooner.
            interaction.extras["answer_deadline"] = FORWARDED_ANSWER_DEADLINE
            if current.deferred:
                # The receiving bot deferred it already: this bot answers with followups. discord.py
                # has no public way to say so about an interaction it did not answer itself.
                interaction.response._response_type = discord.InteractionResponseType.deferred_channel_message  # pyright: ignore[reportPrivateUsage]
                interaction.extras["public_defer"] = current.public_defer
        log_context.bind_interaction(
            bot=interaction.client.user.id if interaction.client.user else None,
            guild=interaction.guild_id,
            command_name=_command_name(interaction),
        )
        # The answer language (the member's, or the guild's choice) is known before any command
        # runs, so its answers and this tree's error answers agree.
        await remember_language(interaction)
        return True

    async def _call(self, interaction: discord.Interaction) -> None:
        # discord.py's entry for every application command; a failure goes through on_error.
        await super()._call(interaction)
        if not interaction.command_failed:
            _count(interaction, InteractionOutcome.OK)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        # Nothing may escape: discord.py runs this in a task nobody awaits.
        outcome = InteractionOutcome.FAILED
        try:
            outcome = await self._answer_error(interaction, error)
        except Exception:
            _log.exception("The error handler itself failed for %s", describe(interaction))
        finally:
            _count(interaction, outcome)

    async def _answer_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> InteractionOutcome:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(original, ActsElsewhere):
            # The acting bot runs on another worker: not an error, a hand-over (that worker
            # counts the command again, with the outcome it had there).
            if self.forwarder is None:
                await reply_error(interaction, not_responding(interaction))
                return InteractionOutcome.FAILED
            await self.forwarder.forward(interaction, original.bot_id)
            return InteractionOutcome.FORWARDED
        lang = language(interaction)
        if isinstance(original, AllBotsBusy) and original.invite_url:
            view = discord.ui.View()
            label = text(lang, "invite.button", name=original.invite_name or "")
            view.add_item(discord.ui.Button(label=label[:80], url=original.invite_url))
            await reply_error(interaction, original.render(lang), view=view)
            return InteractionOutcome.USER_ERROR
        if isinstance(original, MusicError):
            await reply_error(interaction, original.render(lang))
            return InteractionOutcome.USER_ERROR
        if isinstance(original, app_commands.CheckFailure | app_commands.TransformerError):
            await reply_error(interaction, text(lang, "error.cannot_use_here"))
            return InteractionOutcome.USER_ERROR
        _log.error("Command %s failed", describe(interaction), exc_info=original)
        await reply_error(interaction, text(lang, UNEXPECTED_KEY))
        return InteractionOutcome.FAILED


def _count(interaction: discord.Interaction, outcome: InteractionOutcome) -> None:
    """Count an application command once, with its latency to the first answer if it had one."""
    dispatched = interaction.extras.get(_DISPATCHED)
    if dispatched is None or interaction.extras.get(_COUNTED):
        return  # autocomplete, or counted already
    interaction.extras[_COUNTED] = True
    answered: float | None = getattr(interaction.response, "answered_at", None)  # unset: never answered
    observe_interaction(_command_name(interaction), outcome, dispatched=dispatched, answered=answered)
