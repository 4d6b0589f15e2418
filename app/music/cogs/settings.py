"""Per-guild settings: /settings (this bot's, plus the guild's language) and /247 (Manage Server)."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from app.i18n import Msg, Tr, language_of_locale
from app.music.access import member_of
from app.music.errors import NotAllowed
from app.music.language import tr
from app.music.options import check_choice
from app.music.service import MusicService

LANGUAGE_CHOICES = ("auto", "en", "th")


def _require_manager(interaction: discord.Interaction) -> discord.Member:
    member = member_of(interaction)
    if not member.guild_permissions.manage_guild:
        raise NotAllowed("error.manage_server_only")
    return member


def _on_off(t: Tr, value: bool) -> str:
    return t("state.on" if value else "state.off")


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class SettingsGroup(
    app_commands.Group, name="settings", description="This bot's music settings for the server"
):
    def __init__(self, music: MusicService) -> None:
        super().__init__()
        self.music = music

    @app_commands.command(name="show", description="Show the current settings")
    async def show(self, interaction: discord.Interaction) -> None:
        member = _require_manager(interaction)
        t = tr(interaction)
        settings = await self.music.guild_settings.get(member.guild.id)
        chosen = await self.music.languages.chosen(member.guild.id)
        role = f"<@&{settings.dj_role_id}>" if settings.dj_role_id else t("settings.no_dj_role")
        embed = discord.Embed(title=t("settings.title"))
        embed.add_field(name=t("settings.dj_role"), value=role, inline=False)
        embed.add_field(name=t("settings.announcements"), value=_on_off(t, settings.announce_now_playing))
        embed.add_field(name=t("settings.channel_status"), value=_on_off(t, settings.channel_status))
        embed.add_field(name="24/7", value=_on_off(t, settings.stay_24_7))
        embed.add_field(name=t("settings.language"), value=t(f"language.{chosen or 'auto'}"), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="dj-role", description="Set the DJ role (leave empty to let everyone control)")
    @app_commands.describe(role="Members with this role control all tracks; others only their own")
    async def dj_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, dj_role_id=role.id if role else None)
        t = tr(interaction)
        message = t("settings.dj_role_set", role=role.mention) if role else t("settings.dj_role_cleared")
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(
        name="announcements", description="Post the now-playing controller in the channel where music started"
    )
    @app_commands.describe(state="on or off")
    async def announcements(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="state")
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, announce_now_playing=state == "on")
        message = tr(interaction)("settings.announcements_set", state=Msg(f"state.{state}"))
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(
        name="channel-status", description="Show the playing track as the voice channel's status"
    )
    @app_commands.describe(state="on or off")
    async def channel_status(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="state")
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, channel_status=state == "on")
        player = self.music.get_player(member.guild.id)
        if player is not None:
            if state == "off":
                await self.music.channel_status.clear(player)
            elif player.current is not None:
                await self.music.channel_status.show(player, player.current)
        message = tr(interaction)("settings.channel_status_set", state=Msg(f"state.{state}"))
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(
        name="language", description="The language of every bot's answers here (auto: each member's own)"
    )
    @app_commands.describe(language="auto (each member's Discord language), en or th")
    async def language(self, interaction: discord.Interaction, language: Literal["auto", "en", "th"]) -> None:
        check_choice(language, LANGUAGE_CHOICES, what="language")
        member = _require_manager(interaction)
        chosen = None if language == "auto" else language
        await self.music.languages.choose(member.guild.id, chosen)
        # The answer is already in the new language (auto: the member's own).
        t = Tr(chosen or language_of_locale(interaction.locale))
        await interaction.response.send_message(
            t("settings.language_set", language=Msg(f"language.{language}")), ephemeral=True
        )


class GuildSettingsCog(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(name="247", description="Stay in the voice channel even when idle (24/7 mode)")
    @app_commands.describe(state="on or off")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def stay(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="state")
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, stay_24_7=state == "on")
        message = tr(interaction)("settings.stay_set", state=Msg(f"state.{state}"))
        await interaction.response.send_message(message, ephemeral=True)


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(GuildSettingsCog(music))
    bot.tree.add_command(SettingsGroup(music))
