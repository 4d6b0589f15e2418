"""The command tree of every bot: one error handler that answers the user and logs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from app.bots.forwarding import FORWARDED_ANSWER_DEADLINE, NOT_RESPONDING, inbound
from app.music.errors import AllBotsBusy, MusicError
from app.music.fleet import ActsElsewhere
from app.music.replies import UNEXPECTED, describe, reply_error

if TYPE_CHECKING:
    from app.bots.forwarding import Forwarder

_log = logging.getLogger(__name__)


class ChorusTree(app_commands.CommandTree[discord.Client]):
    # Set by the bot's client in a fleet (None: a tree that never forwards, e.g. deploy-commands).
    forwarder: Forwarder | None = None

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        current = inbound()
        if current is not None and current.forwarded:
            # Part of Discord's 3 s went on the way here: answer (or defer) sooner.
            interaction.extras["answer_deadline"] = FORWARDED_ANSWER_DEADLINE
            if current.deferred:
                # The receiving bot deferred it already: this bot answers with followups. discord.py
                # has no public way to say so about an interaction it did not answer itself.
                interaction.response._response_type = discord.InteractionResponseType.deferred_channel_message  # pyright: ignore[reportPrivateUsage]
                interaction.extras["public_defer"] = current.public_defer
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        # Nothing may escape: discord.py runs this in a task nobody awaits.
        try:
            await self._answer_error(interaction, error)
        except Exception:
            _log.exception("The error handler itself failed for %s", describe(interaction))

    async def _answer_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(original, ActsElsewhere):
            # The acting bot runs on another worker: not an error, a hand-over.
            if self.forwarder is None:
                await reply_error(interaction, NOT_RESPONDING)
            else:
                await self.forwarder.forward(interaction, original.bot_id)
            return
        if isinstance(original, AllBotsBusy) and original.invite_url:
            view = discord.ui.View()
            view.add_item(
                discord.ui.Button(label=f"Invite {original.invite_name}"[:80], url=original.invite_url)
            )
            await reply_error(interaction, str(original), view=view)
            return
        if isinstance(original, MusicError):
            await reply_error(interaction, str(original))
            return
        if isinstance(original, app_commands.CheckFailure | app_commands.TransformerError):
            await reply_error(interaction, str(original) or "You can't use this command here.")
            return
        _log.error("Command %s failed", describe(interaction), exc_info=original)
        await reply_error(interaction, UNEXPECTED)
