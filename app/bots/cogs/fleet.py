"""The network in Discord: /bots (who is here and what each is doing) and /invite."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands
from pymongo.errors import PyMongoError

from app.db import queries
from app.db.connection import interactive
from app.db.models import MusicBot, ServerStatus
from app.music.access import member_of
from app.music.errors import MusicError
from app.music.service import MusicService

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)


class Fleet(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(name="bots", description="Our music bots in this server and what each is doing")
    @app_commands.guild_only()
    async def bots(self, interaction: discord.Interaction) -> None:
        guild = member_of(interaction).guild
        lines: dict[int, str] = {}
        for service in self.music.fleet.services_in_guild(guild.id):
            player = service.get_player(guild.id)
            if player is not None and player.channel is not None:
                what = "paused" if player.paused else ("playing" if player.current else "idle")
                lines[service.bot_id] = f"🎶 **{service.name}**: {what} in {player.channel.mention}"
            elif service.nodes.best() is None:
                lines[service.bot_id] = f"⚠️ **{service.name}**: audio backend unavailable"
            else:
                lines[service.bot_id] = f"✅ **{service.name}**: free"
        try:
            with interactive():
                assignments = await queries.guild_assignments(guild.id)
            for assignment in assignments:
                if (
                    assignment.status is not ServerStatus.FAILED
                    or assignment.reason == queries.INVITE_EXPIRED
                ):
                    continue
                with interactive():
                    bot = await MusicBot.get(assignment.music_bot_id)
                if bot is not None:
                    lines[bot.client_id] = (
                        f"❌ **{bot.name}**: failed ({assignment.reason or 'unknown reason'})"
                    )
        except PyMongoError as exc:
            _log.warning("/bots: assignments unavailable (%s)", exc)
        if not lines:
            raise MusicError("None of our bots is ready in this server right now.")
        embed = discord.Embed(title="Music bots here", description="\n".join(lines.values()))
        embed.set_footer(text="Any of them answers /play; the free one joins your channel.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="invite", description="Invite one more music bot, for one more voice channel")
    @app_commands.guild_only()
    async def invite(self, interaction: discord.Interaction) -> None:
        guild = member_of(interaction).guild
        try:
            with interactive():
                invite = await self.music.fleet.invite_for(guild.id)
        except PyMongoError as exc:
            _log.warning("/invite: database unavailable (%s)", exc)
            raise MusicError("Invites are unavailable right now; please try again shortly.") from None
        if invite is None:
            raise MusicError("Every bot of the network is already here or full.")
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label=f"Invite {invite.name}"[:80], url=invite.url))
        await interaction.response.send_message(
            f"Add **{invite.name}** to play music in one more voice channel at a time.", view=view
        )


async def setup(bot: commands.Bot, music: MusicService, manager: BotManager | None) -> None:
    await bot.add_cog(Fleet(music))
