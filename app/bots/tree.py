"""The command tree of every bot: one error handler that answers the user and logs."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from app.i18n import text
from app.music.errors import AllBotsBusy, MusicError
from app.music.language import language, remember_language
from app.music.replies import UNEXPECTED_KEY, describe, reply_error

_log = logging.getLogger(__name__)


class ChorusTree(app_commands.CommandTree[discord.Client]):
    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # The answer language (the member's, or the guild's choice) is known before any command
        # runs, so its answers and this tree's error answers agree.
        await remember_language(interaction)
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
        lang = language(interaction)
        if isinstance(original, AllBotsBusy) and original.invite_url:
            view = discord.ui.View()
            label = text(lang, "invite.button", name=original.invite_name or "")
            view.add_item(discord.ui.Button(label=label[:80], url=original.invite_url))
            await reply_error(interaction, original.render(lang), view=view)
            return
        if isinstance(original, MusicError):
            await reply_error(interaction, original.render(lang))
            return
        if isinstance(original, app_commands.CheckFailure | app_commands.TransformerError):
            await reply_error(interaction, text(lang, "error.cannot_use_here"))
            return
        _log.error("Command %s failed", describe(interaction), exc_info=original)
        await reply_error(interaction, text(lang, UNEXPECTED_KEY))
