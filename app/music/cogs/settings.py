"""Per-guild settings of this bot: /settings and /247 (Manage Server)."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from app.music.access import member_of
from app.music.errors import NotAllowed
from app.music.options import check_choice
from app.music.service import MusicService


def _require_manager(interaction: discord.Interaction) -> discord.Member:
    member = member_of(interaction)
    if not member.guild_permissions.manage_guild:
        raise NotAllowed("You need the Manage Server permission for this.")
    return member


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
        settings = await self.music.guild_settings.get(member.guild.id)
        role = f"<@&{settings.dj_role_id}>" if settings.dj_role_id else "none (everyone controls the music)"
        embed = discord.Embed(title="Music settings")
        embed.add_field(name="DJ role", value=role, inline=False)
        embed.add_field(
            name="Now-playing announcements", value="on" if settings.announce_now_playing else "off"
        )
        embed.add_field(name="24/7", value="on" if settings.stay_24_7 else "off")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="dj-role", description="Set the DJ role (leave empty to let everyone control)")
    @app_commands.describe(role="Members with this role control all tracks; others only their own")
    async def dj_role(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, dj_role_id=role.id if role else None)
        message = (
            f"DJ role set to {role.mention}." if role else "DJ role cleared: everyone controls the music."
        )
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(
        name="announcements", description="Announce each track in the channel where music started"
    )
    @app_commands.describe(state="on or off")
    async def announcements(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="The state")
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, announce_now_playing=state == "on")
        await interaction.response.send_message(f"Now-playing announcements **{state}**.", ephemeral=True)


class GuildSettingsCog(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(name="247", description="Stay in the voice channel even when idle (24/7 mode)")
    @app_commands.describe(state="on or off")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def stay(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="The state")
        member = _require_manager(interaction)
        await self.music.guild_settings.update(member.guild.id, stay_24_7=state == "on")
        await interaction.response.send_message(f"24/7 mode **{state}**.", ephemeral=True)


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(GuildSettingsCog(music))
    bot.tree.add_command(SettingsGroup(music))
