"""Answering a user when something failed: ephemeral, whatever state the interaction is in, and
never raising (a failure to answer is logged once, with the command, bot and guild)."""

from __future__ import annotations

import logging

import discord

from app.i18n import DEFAULT_LANGUAGE, text
from app.music.errors import MusicError
from app.music.language import language

_log = logging.getLogger(__name__)

UNEXPECTED_KEY = "error.unexpected"
UNEXPECTED = text(DEFAULT_LANGUAGE, UNEXPECTED_KEY)  # the English text, for code that logs it


def describe(interaction: discord.Interaction) -> str:
    """The context every log line about an interaction carries."""
    command = interaction.command.qualified_name if interaction.command else None
    what = f"/{command}" if command else f"interaction {interaction.id}"
    bot = interaction.client.user.id if interaction.client.user else None
    return (
        f"{what} (bot {bot}, guild {interaction.guild_id}, channel {interaction.channel_id}, "
        f"user {interaction.user.id})"
    )


async def reply_error(
    interaction: discord.Interaction, message: str, *, view: discord.ui.View = discord.utils.MISSING
) -> bool:
    """Answer ephemerally; returns whether Discord took the answer. Never raises.

    Not only HTTP errors: discord.py can raise anything while answering (seen: a TypeError
    reading a callback reply it did not expect, after Discord had accepted the answer). Such
    an error escaping here used to end as "Task exception was never retrieved".
    """
    try:
        await _answer(interaction, message, view=view)
    except Exception as exc:
        # A response that raised after it was sent (the interaction counts as answered now)
        # still reached the user; anything else did not.
        delivered = not isinstance(exc, discord.HTTPException) and interaction.response.is_done()
        _log.warning(
            "Answering %s with %r %s: %r",
            describe(interaction),
            message[:80],
            "went through but its reply could not be read" if delivered else "failed",
            exc,
        )
        return delivered
    return True


async def _answer(interaction: discord.Interaction, message: str, *, view: discord.ui.View) -> None:
    if not interaction.response.is_done():
        await interaction.response.send_message(message, ephemeral=True, view=view)
        return
    if interaction.extras.get("public_defer"):
        # A public "thinking…" placeholder would make the error public: replace it.
        interaction.extras["public_defer"] = False
        try:
            await interaction.delete_original_response()
        except discord.HTTPException:
            await interaction.edit_original_response(content=message, embed=None, view=None)
            return
    await interaction.followup.send(message, ephemeral=True, view=view)


async def reply_failure(
    interaction: discord.Interaction, error: Exception, *, lang: str | None = None
) -> None:
    """Answer a failure in the reader's language: a MusicError says what, anything else is
    logged and answered "something went wrong". Never raises."""
    lang = lang or language(interaction)
    if isinstance(error, MusicError):
        await reply_error(interaction, error.render(lang))
        return
    _log.error("%s failed", describe(interaction), exc_info=error)
    await reply_error(interaction, text(lang, UNEXPECTED_KEY))


class AnsweringView(discord.ui.View):
    """A view whose failures answer the user (discord.py's default only logs them), in the
    language of the message it belongs to."""

    def __init__(self, *, timeout: float | None = 180.0, language: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self.language = language

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[discord.ui.View]
    ) -> None:
        await reply_failure(interaction, error, lang=self.language)
