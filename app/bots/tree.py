"""The command tree of every bot: one error handler that answers the user and logs."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from app.music.errors import AllBotsBusy, MusicError

_log = logging.getLogger(__name__)

UNEXPECTED = "Something went wrong on my side. It has been logged; please try again."


async def reply_error(
    interaction: discord.Interaction, message: str, *, view: discord.ui.View = discord.utils.MISSING
) -> None:
    """Answer ephemerally, whatever state the interaction is in."""
    try:
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
    except discord.HTTPException as exc:
        _log.warning("Could not deliver an error message to interaction %s: %s", interaction.id, exc)


class ChorusTree(app_commands.CommandTree[discord.Client]):
    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
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
        command = interaction.command.qualified_name if interaction.command else "?"
        _log.error(
            "Command /%s failed (bot %s, guild %s, channel %s, user %s)",
            command,
            interaction.client.user and interaction.client.user.id,
            interaction.guild_id,
            interaction.channel_id,
            interaction.user.id,
            exc_info=original,
        )
        await reply_error(interaction, UNEXPECTED)
