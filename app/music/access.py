"""Who may do what with which player, across the whole fleet.

A command may reach any of our bots in a guild; these helpers find the player that owns music
in the caller's voice channel, whichever bot it belongs to, and apply that bot's DJ rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from app.i18n import Msg
from app.music.errors import NotAllowed, NothingPlaying, NotInVoice
from app.music.player import ChorusPlayer, requester_id

if TYPE_CHECKING:
    from app.music.service import MusicService

VoiceLike = discord.VoiceChannel | discord.StageChannel


def member_of(interaction: discord.Interaction) -> discord.Member:
    if not isinstance(interaction.user, discord.Member) or interaction.guild is None:
        raise NotAllowed("error.servers_only")
    return interaction.user


def caller_channel(interaction: discord.Interaction) -> VoiceLike:
    voice = member_of(interaction).voice
    if voice is None or not isinstance(voice.channel, VoiceLike):
        raise NotInVoice()
    return voice.channel


def controlled_player(receiving: MusicService, interaction: discord.Interaction) -> ChorusPlayer:
    """The player of whichever of our bots is in the caller's voice channel (`receiving` is the
    music of the bot that got the command; the player may belong to another bot of the fleet)."""
    channel = caller_channel(interaction)
    player = receiving.fleet.player_in_channel(channel.guild.id, channel.id)
    if player is None:
        raise NothingPlaying()
    player.service.ensure_backend(player)
    return player


def bot_name(player: ChorusPlayer) -> str:
    return player.service.name


def acted(player: ChorusPlayer, text: str) -> str:
    """An answer that names the bot that acted (it may not be the one that received the command)."""
    return f"{text} · **{bot_name(player)}**"


def dj_only(action: str) -> NotAllowed:
    """ "Only DJs can <action>.": `action` names an `action.*` message."""
    return NotAllowed("error.dj_only", action=Msg(f"action.{action}"))


async def is_dj(interaction: discord.Interaction, player: ChorusPlayer) -> bool:
    """Full control: no DJ role configured, the DJ role, Manage Server, or alone with the bot.

    The DJ role is the acting bot's setting for this guild (settings are per bot).
    """
    member = member_of(interaction)
    if member.guild_permissions.manage_guild:
        return True
    service = player.service
    settings = await service.guild_settings.get(member.guild.id)
    if settings.dj_role_id is None or any(role.id == settings.dj_role_id for role in member.roles):
        return True
    return service.listeners(player) == [member.id]


async def require_dj(interaction: discord.Interaction, player: ChorusPlayer, *, action: str) -> None:
    """`action` names an `action.*` message ("stop" → "Only DJs can stop the music.")."""
    if not await is_dj(interaction, player):
        raise dj_only(action)


async def require_dj_or_owner(
    interaction: discord.Interaction, player: ChorusPlayer, track_requester: int | None, *, action: str
) -> None:
    """DJs control everything; others only the tracks they added."""
    if track_requester == interaction.user.id:
        return
    await require_dj(interaction, player, action=action)


def current_requester(player: ChorusPlayer) -> int | None:
    return requester_id(player.current)
