"""Who may do what with which player. Commands call these; routing across bots plugs in here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from app.music.errors import AudioBackendUnavailable, NotAllowed, NothingPlaying, NotInVoice, NotSameChannel
from app.music.player import ChorusPlayer, requester_id

if TYPE_CHECKING:
    from app.music.service import MusicService

VoiceLike = discord.VoiceChannel | discord.StageChannel


def music_of(interaction: discord.Interaction) -> MusicService:
    service: MusicService | None = getattr(interaction.client, "music", None)
    if service is None:
        raise AudioBackendUnavailable()
    return service


def member_of(interaction: discord.Interaction) -> discord.Member:
    if not isinstance(interaction.user, discord.Member) or interaction.guild is None:
        raise NotAllowed("Music commands work in servers only.")
    return interaction.user


def caller_channel(interaction: discord.Interaction) -> VoiceLike:
    voice = member_of(interaction).voice
    if voice is None or not isinstance(voice.channel, VoiceLike):
        raise NotInVoice()
    return voice.channel


def controlled_player(interaction: discord.Interaction) -> ChorusPlayer:
    """The player in the caller's voice channel; the caller must be in it."""
    service = music_of(interaction)
    assert interaction.guild_id is not None
    player = service.get_player(interaction.guild_id)
    channel = caller_channel(interaction)
    if player is None or player.channel is None:
        raise NothingPlaying()
    if player.channel.id != channel.id:
        raise NotSameChannel(player.channel.mention)
    service.ensure_backend(player)
    return player


async def is_dj(interaction: discord.Interaction, player: ChorusPlayer | None) -> bool:
    """Full control: no DJ role configured, the DJ role, Manage Server, or alone with the bot."""
    member = member_of(interaction)
    if member.guild_permissions.manage_guild:
        return True
    service = music_of(interaction)
    settings = await service.guild_settings.get(member.guild.id)
    if settings.dj_role_id is None or any(role.id == settings.dj_role_id for role in member.roles):
        return True
    return player is not None and service.listeners(player) == [member.id]


async def require_dj(interaction: discord.Interaction, player: ChorusPlayer | None, *, action: str) -> None:
    if not await is_dj(interaction, player):
        raise NotAllowed(f"Only DJs can {action}.")


async def require_dj_or_owner(
    interaction: discord.Interaction, player: ChorusPlayer, track_requester: int | None, *, action: str
) -> None:
    """DJs control everything; others only the tracks they added."""
    if track_requester == interaction.user.id:
        return
    await require_dj(interaction, player, action=action)


def current_requester(player: ChorusPlayer) -> int | None:
    return requester_id(player.current)
