"""The voice channel's status shows what a player plays.

Discord's voice channel status (the line under a voice channel's name) is set with
`PUT /channels/{id}/voice-status` (discord.py 2.7: `VoiceChannel.edit(status=...)`, up to 500
characters, `None` clears it). The bot must be connected to the channel (or have Manage
Channels) and have the Set Voice Channel Status permission. A bot without the permission works
as before: the refusal is logged once per guild and otherwise ignored. `/settings channel-status
off` turns it off for one bot in one guild. Stage channels have no such status.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
import wavelink

if TYPE_CHECKING:
    from app.music.player import ChorusPlayer
    from app.music.service import MusicService

_log = logging.getLogger(__name__)

STATUS_MAX = 500


def status_text(track: wavelink.Playable) -> str:
    author = f" — {track.author}" if track.author else ""
    return f"🎶 {track.title}{author}"[:STATUS_MAX]


class ChannelStatus:
    """Sets and clears the voice channel status of one bot's players."""

    def __init__(self, service: MusicService) -> None:
        self._service = service
        self._refused_guilds: set[int] = set()  # logged once per guild
        self._shown: dict[int, int] = {}  # guild -> channel whose status this bot set

    def _channel(self, player: ChorusPlayer) -> discord.VoiceChannel | None:
        channel = player.channel
        return channel if isinstance(channel, discord.VoiceChannel) else None

    def _refused(self, guild_id: int, why: str) -> None:
        if guild_id in self._refused_guilds:
            return
        self._refused_guilds.add(guild_id)
        _log.info("Bot %d: cannot show the playing track as the voice channel status in guild %d (%s); "
                  "ignored from now on", self._service.bot_id, guild_id, why)  # fmt: skip

    async def show(self, player: ChorusPlayer, track: wavelink.Playable) -> None:
        channel = self._channel(player)
        if channel is None:
            return
        guild = channel.guild
        if not (await self._service.guild_settings.get(guild.id)).channel_status:
            return
        if not channel.permissions_for(guild.me).set_voice_channel_status:
            self._refused(guild.id, "missing the Set Voice Channel Status permission")
            return
        if await self._put(channel, status_text(track)):
            self._shown[guild.id] = channel.id

    async def clear(self, player: ChorusPlayer) -> None:
        """Clear the status this bot set (the player left, stopped, or the setting went off)."""
        guild = player.guild
        if guild is None:
            return
        channel_id = self._shown.pop(guild.id, None)
        channel = guild.get_channel(channel_id) if channel_id is not None else None
        if isinstance(channel, discord.VoiceChannel):
            await self._put(channel, None)

    async def _put(self, channel: discord.VoiceChannel, status: str | None) -> bool:
        try:
            await channel.edit(status=status)
        except discord.Forbidden as exc:
            if status is None:  # clearing after the bot left: Discord wants it in the channel
                _log.debug("Bot %d: voice channel status of channel %d not cleared (%s)",
                           self._service.bot_id, channel.id, exc)  # fmt: skip
            else:
                self._refused(channel.guild.id, f"Discord refused: {exc.text or exc.status}")
            return False
        except (discord.HTTPException, OSError) as exc:
            _log.info("Bot %d: voice channel status of channel %d not changed (%s)",
                      self._service.bot_id, channel.id, exc)  # fmt: skip
            return False
        return True
