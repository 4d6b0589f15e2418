"""Who may do what with which player, across the whole fleet.

A command may reach any of our bots in a guild; `controlled` finds the player that owns music in
the caller's voice channel, whichever bot it belongs to, and the DJ rules are that bot's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from app.i18n import Msg
from app.music.errors import NotAllowed, NothingPlaying
from app.music.player import ChorusPlayer, requester_id
from app.music.request import ControlRequest, MusicRequest, VoiceLike, member_of

if TYPE_CHECKING:
    from app.music.service import MusicService

__all__ = (
    "VoiceLike",
    "acted",
    "bot_name",
    "controlled",
    "current_requester",
    "dj_only",
    "is_dj",
    "member_of",
    "require_dj",
    "require_dj_or_owner",
)


def controlled(
    receiving: MusicService, interaction: discord.Interaction, *, language: str | None = None
) -> ControlRequest:
    """The caller's request, with the player of whichever of our bots is in the caller's voice
    channel (`receiving` is the music of the bot running the command; the player may belong to
    another bot of the fleet)."""
    caller = MusicRequest.of(receiving, interaction, language=language)
    player = receiving.fleet.player_in_channel(caller.guild_id, caller.channel_id)
    if player is None:
        raise NothingPlaying()
    player.service.ensure_backend(player)
    return caller.controlling(player)


def bot_name(player: ChorusPlayer) -> str:
    return player.service.name


def acted(player: ChorusPlayer, text: str) -> str:
    """An answer that names the bot that acted (it may not be the one that received the command)."""
    return f"{text} · **{bot_name(player)}**"


def dj_only(action: str) -> NotAllowed:
    """ "Only DJs can <action>.": `action` names an `action.*` message."""
    return NotAllowed("error.dj_only", action=Msg(f"action.{action}"))


async def is_dj(request: ControlRequest) -> bool:
    """Full control: no DJ role configured, the DJ role, Manage Server, or alone with the bot.

    The DJ role is the acting bot's setting for this guild (settings are per bot).
    """
    member = request.member
    if member.guild_permissions.manage_guild:
        return True
    service = request.acting
    settings = await service.guild_settings.get(request.guild_id)
    if settings.dj_role_id is None or any(role.id == settings.dj_role_id for role in member.roles):
        return True
    return service.listeners(request.player) == [member.id]


async def require_dj(request: ControlRequest, *, action: str) -> None:
    """`action` names an `action.*` message ("stop" → "Only DJs can stop the music.")."""
    if not await is_dj(request):
        raise dj_only(action)


async def require_dj_or_owner(request: ControlRequest, track_requester: int | None, *, action: str) -> None:
    """DJs control everything; others only the tracks they added."""
    if track_requester == request.user_id:
        return
    await require_dj(request, action=action)


def current_requester(player: ChorusPlayer) -> int | None:
    return requester_id(player.current)
