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
from app.music.language import tr
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
        t = tr(interaction)
        lines: dict[int, str] = {}
        for service in self.music.fleet.services_in_guild(guild.id):
            player = service.get_player(guild.id)
            if player is not None and player.channel is not None:
                what = "paused" if player.paused else ("playing" if player.current else "idle")
                where = player.channel.mention
                lines[service.bot_id] = t(f"bots.{what}", bot=service.name, channel=where)
            elif service.nodes.best() is None:
                lines[service.bot_id] = t("bots.no_backend", bot=service.name)
            else:
                lines[service.bot_id] = t("bots.free", bot=service.name)
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
                    reason = assignment.reason or t("clone.unknown_reason")
                    lines[bot.client_id] = t("bots.failed", bot=bot.name, reason=reason)
        except PyMongoError as exc:
            _log.warning("/bots: assignments unavailable (%s)", exc)
        if not lines:
            raise MusicError("bots.none_ready")
        embed = discord.Embed(title=t("bots.title"), description="\n".join(lines.values()))
        embed.set_footer(text=t("bots.footer"))
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
            raise MusicError("invite.unavailable") from None
        if invite is None:
            raise MusicError("invite.none_left")
        t = tr(interaction)
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label=t("invite.button", name=invite.name)[:80], url=invite.url))
        await interaction.response.send_message(t("invite.offer", name=invite.name), view=view)


async def setup(bot: commands.Bot, music: MusicService, manager: BotManager | None) -> None:
    await bot.add_cog(Fleet(music))
