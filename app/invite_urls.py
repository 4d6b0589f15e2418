"""Invite links: the OAuth2 URL that adds a bot to a guild with what a music bot needs."""

from __future__ import annotations

import discord

__all__ = ("INVITE_PERMISSION_NAMES", "INVITE_SCOPES", "MUSIC_BOT_PERMISSIONS", "invite_url")

# `bot` puts the bot in the guild; `applications.commands` lets its slash commands appear there.
INVITE_SCOPES: tuple[str, ...] = ("bot", "applications.commands")

# View channel, send messages, embed links (the now-playing controller), connect and speak
# (voice), set voice channel status (the playing track under the channel's name).
MUSIC_BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    connect=True,
    speak=True,
    set_voice_channel_status=True,
)
INVITE_PERMISSION_NAMES: tuple[str, ...] = (
    "View Channel",
    "Send Messages",
    "Embed Links",
    "Connect",
    "Speak",
    "Set Voice Channel Status",
)


def invite_url(client_id: int) -> str:
    """`https://discord.com/oauth2/authorize?client_id=ID&scope=bot+applications.commands&permissions=N`."""
    return discord.utils.oauth_url(client_id, permissions=MUSIC_BOT_PERMISSIONS, scopes=INVITE_SCOPES)
