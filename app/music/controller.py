"""The now-playing controller: one message per player with buttons, edited on each track change.

The buttons are persistent: their custom ids are `chorus:<kind>:<bot_id>:<guild_id>`, handled by
a `DynamicItem` every bot registers, so they work after a restart and on any worker (a later
forwarding step routes a press to the bot named in the id; the press acts through
`interaction.client`). A press acts on the player in the presser's voice channel, like the
commands (routing applies), through the same actions and DJ/vote rules (`app/music/actions.py`);
once the controller's own player is gone it answers that the player has ended.

The message lives in the channel where music was started (with `/settings announcements on`,
the default), is edited when a track starts, and is deleted when the player leaves. Its id is
saved with the player snapshot, so a resumed player keeps editing the same message.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
import wavelink

from app.i18n import Msg, Tr
from app.music import actions
from app.music.access import controlled
from app.music.errors import PlayerEnded
from app.music.formatting import track_length
from app.music.player import ChorusPlayer, requester_name
from app.music.replies import reply_failure
from app.music.views import queue_pager

if TYPE_CHECKING:
    from app.music.service import MusicService

_log = logging.getLogger(__name__)

# Channels a controller can be posted in (and edited and deleted through a partial message).
Postable = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread

# kind -> (emoji, label key, row)
BUTTONS: dict[str, tuple[str, str, int]] = {
    "previous": ("⏮️", "controller.previous", 0),
    "pause": ("⏯️", "controller.pause", 0),
    "skip": ("⏭️", "controller.skip", 0),
    "stop": ("⏹️", "controller.stop", 0),
    "loop": ("🔁", "controller.loop", 1),
    "shuffle": ("🔀", "controller.shuffle", 1),
    "queue": ("📜", "controller.queue", 1),
}
TEMPLATE = re.compile(
    rf"chorus:(?P<kind>{'|'.join(BUTTONS)}):(?P<bot>[0-9]{{1,20}}):(?P<guild>[0-9]{{1,20}})"
)


def custom_id(kind: str, bot_id: int, guild_id: int) -> str:
    return f"chorus:{kind}:{bot_id}:{guild_id}"


def _music_of(client: discord.Client) -> MusicService | None:
    from app.music.service import MusicService  # the service module imports this one

    music = getattr(client, "music", None)
    return music if isinstance(music, MusicService) else None


class ControllerButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One controller button. Built from its custom id on every press, on whichever bot."""

    def __init__(
        self, kind: str, bot_id: int, guild_id: int, *, t: Tr | None = None, paused: bool = False
    ) -> None:
        emoji, label_key, row = BUTTONS[kind]
        label = None
        if t is not None:
            label = t("controller.resume") if kind == "pause" and paused else t(label_key)
        style = discord.ButtonStyle.danger if kind == "stop" else discord.ButtonStyle.secondary
        button: discord.ui.Button[Any] = discord.ui.Button(
            emoji=emoji, label=label, style=style, custom_id=custom_id(kind, bot_id, guild_id)
        )
        super().__init__(button, row=row)
        self.kind = kind
        self.bot_id = bot_id
        self.guild_id = guild_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ControllerButton:
        return cls(match["kind"], int(match["bot"]), int(match["guild"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # discord.py only logs what a dynamic item raises: every failure is answered here.
        music = _music_of(interaction.client)
        if music is None:
            return
        lang = await music.languages.for_interaction(interaction)
        try:
            await press(music, interaction, self.kind, self.bot_id, self.guild_id, Tr(lang))
        except Exception as exc:
            await reply_failure(interaction, exc, lang=lang)


def _own_player(music: MusicService, bot_id: int, guild_id: int) -> ChorusPlayer | None:
    """The player the controller belongs to (the bot named in its custom id), if it still plays."""
    if music.bot_id == bot_id:
        return music.get_player(guild_id)
    for service in music.fleet.services_in_guild(guild_id):
        if service.bot_id == bot_id:
            return service.get_player(guild_id)
    return None


async def press(
    music: MusicService, interaction: discord.Interaction, kind: str, bot_id: int, guild_id: int, t: Tr
) -> None:
    if _own_player(music, bot_id, guild_id) is None:
        raise PlayerEnded()
    request = controlled(music, interaction, language=t.language)
    player = request.player
    if kind == "queue":
        pager = queue_pager(player, t)
        await interaction.response.send_message(embed=pager.embed(), view=pager, ephemeral=True)
        return
    done: Msg
    if kind == "pause":
        done = await actions.toggle_pause(request)
    elif kind == "skip":
        done = await actions.skip(request)
    elif kind == "stop":
        done = await actions.stop(request)
    elif kind == "loop":
        done = await actions.cycle_loop(request)
    elif kind == "shuffle":
        done = await actions.shuffle(request)
    else:
        done = await actions.previous(request)
    await interaction.response.send_message(request.answer(done), ephemeral=True)
    if kind in ("pause", "loop", "shuffle", "stop"):  # a new track refreshes it anyway
        await player.service.controllers.refresh(player)


def controller_view(player: ChorusPlayer, t: Tr) -> discord.ui.View:
    view = discord.ui.View(timeout=None)  # persistent: the buttons are dynamic items
    guild_id = player.guild.id if player.guild is not None else 0
    for kind in BUTTONS:
        view.add_item(ControllerButton(kind, player.service.bot_id, guild_id, t=t, paused=player.paused))
    return view


def controller_embed(player: ChorusPlayer, track: wavelink.Playable | None, t: Tr) -> discord.Embed:
    if track is None:
        return discord.Embed(title=t("controller.title"), description=t("controller.idle"))
    embed = discord.Embed(
        title=t("controller.title"),
        description=t("controller.track", title=track.title[:200], author=track.author[:100]),
        url=track.uri,
    )
    embed.add_field(name=t("controller.length"), value=track_length(track, live=t("track.live")))
    if who := requester_name(track):
        embed.add_field(name=t("controller.requested_by"), value=who)
    embed.add_field(name=t("controller.loop_mode"), value=t(f"loop.{actions.loop_name(player)}"))
    state = t("controller.paused") if player.paused else t("controller.playing")
    embed.set_footer(
        text=t("controller.footer", state=state, queued=len(player.queue), bot=player.service.name)
    )
    return embed


class Controllers:
    """The controller messages of one bot's players."""

    def __init__(self, service: MusicService) -> None:
        self._service = service
        self._refused: set[int] = set()  # channels where posting failed (logged once)

    def _channel(self, player: ChorusPlayer) -> Postable | None:
        if player.guild is None or player.text_channel_id is None:
            return None
        channel = player.guild.get_channel_or_thread(player.text_channel_id)
        return channel if isinstance(channel, Postable) else None

    async def _content(self, player: ChorusPlayer, track: wavelink.Playable | None) -> dict[str, Any]:
        assert player.guild is not None
        t = Tr(await self._service.languages.for_guild(player.guild))
        return {"embed": controller_embed(player, track, t), "view": controller_view(player, t)}

    async def show(self, player: ChorusPlayer, track: wavelink.Playable) -> None:
        """On a track start: edit the player's controller, or post it (announcements on)."""
        channel = self._channel(player)
        if channel is None or player.guild is None:
            return
        if not (await self._service.guild_settings.get(player.guild.id)).announce_now_playing:
            return
        content = await self._content(player, track)
        if player.controller_message_id is not None and await self._edit(player, channel, content):
            return
        try:
            message = await channel.send(**content)
        except discord.HTTPException as exc:
            self._log_refused(player, exc)
            return
        player.controller_message_id = message.id

    async def refresh(self, player: ChorusPlayer) -> None:
        """After a control changed what it shows (paused, loop mode, the queue)."""
        channel = self._channel(player)
        if channel is None or player.controller_message_id is None:
            return
        await self._edit(player, channel, await self._content(player, player.current))

    async def _edit(self, player: ChorusPlayer, channel: Postable, content: dict[str, Any]) -> bool:
        message_id = player.controller_message_id
        if message_id is None:
            return False
        try:
            await channel.get_partial_message(message_id).edit(**content)
        except discord.NotFound:
            player.controller_message_id = None  # deleted by someone: a new one is posted
            return False
        except discord.HTTPException as exc:
            self._log_refused(player, exc)
            return True  # keep it; the next track tries again
        return True

    async def remove(self, player: ChorusPlayer) -> None:
        """The player left: its controller goes too."""
        channel = self._channel(player)
        message_id, player.controller_message_id = player.controller_message_id, None
        if channel is None or message_id is None:
            return
        with contextlib.suppress(discord.HTTPException):
            await channel.get_partial_message(message_id).delete()

    def _log_refused(self, player: ChorusPlayer, exc: discord.HTTPException) -> None:
        channel_id = player.text_channel_id or 0
        if channel_id in self._refused:
            return
        self._refused.add(channel_id)
        _log.info("Bot %d: cannot post the now-playing controller in channel %d: %s",
                  self._service.bot_id, channel_id, exc)  # fmt: skip
