"""Playback: /play, /search, /pause, /resume, /skip, /stop, /leave, /nowplaying, /seek, /volume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import discord
import wavelink
from discord import app_commands
from discord.ext import commands
from pymongo.errors import PyMongoError

from app.db.connection import interactive
from app.music.access import (
    VoiceLike,
    acted,
    bot_name,
    caller_channel,
    controlled_player,
    current_requester,
    is_dj,
    member_of,
    require_dj,
    require_dj_or_owner,
)
from app.music.errors import AllBotsBusy, AudioBackendUnavailable, MusicError, NothingPlaying
from app.music.formatting import InvalidTime, format_duration, parse_time, progress_bar, track_length
from app.music.options import QUERY_MAX, SEARCH_QUERY_MAX, check_count, check_query, check_time, check_volume
from app.music.player import requester_name
from app.music.service import MusicService
from app.music.views import SearchView

_log = logging.getLogger(__name__)

T = TypeVar("T")

ANSWER_DEADLINE = 2.0  # seconds: Discord wants a first answer within 3
SEARCH_RESULTS = 5
AUTOCOMPLETE_RESULTS = 10


def _describe(track: wavelink.Playable) -> str:
    return f"**{track.title[:90]}** ({track_length(track)})"


async def _route_play(
    receiving: MusicService, interaction: discord.Interaction
) -> tuple[MusicService, VoiceLike]:
    """Which bot will play for the caller; checks that must pass before anything is deferred
    (so their errors stay ephemeral). Returns the acting bot's service and the caller's channel."""
    channel = caller_channel(interaction)
    acting = await receiving.fleet.choose_for_play(receiving, channel.guild.id, channel.id)
    if acting is None:
        raise await _all_busy(receiving, channel.guild.id)
    player = acting.get_player(channel.guild.id)
    if player is None:
        acting.check_can_join(_as_seen_by(acting, channel))
    acting.ensure_backend(player)
    return acting, channel


def _as_seen_by(service: MusicService, channel: VoiceLike) -> VoiceLike:
    """The same voice channel from the acting bot's own cache (each bot has its own objects)."""
    guild = service.client.get_guild(channel.guild.id)
    own = guild.get_channel(channel.id) if guild is not None else None
    if not isinstance(own, VoiceLike):
        raise MusicError(f"**{service.name}** can't see {channel.mention}.")
    return own


async def _all_busy(receiving: MusicService, guild_id: int) -> AllBotsBusy:
    busy = len(receiving.fleet.services_in_guild(guild_id))
    try:
        with interactive():  # still before the first answer
            invite = await receiving.fleet.invite_for(guild_id)
    except PyMongoError as exc:
        _log.warning("No invite for guild %d: the database is unavailable (%s)", guild_id, exc)
        invite = None
    if invite is None:
        return AllBotsBusy(busy)
    return AllBotsBusy(busy, invite_name=invite.name, invite_url=invite.url)


async def _enqueue(
    interaction: discord.Interaction,
    receiving: MusicService,
    result: list[wavelink.Playable] | wavelink.Playlist,
) -> str:
    """Join if needed, queue the result (a playlist: all of it), start playing. Returns the answer.

    Under the fleet-wide guild lock: two /play at once in one channel get one bot and one queue.
    """
    member = member_of(interaction)
    channel = caller_channel(interaction)
    fleet = receiving.fleet
    async with fleet.lock(member.guild.id):
        acting = await fleet.choose_for_play(receiving, member.guild.id, channel.id)
        if acting is None:
            raise await _all_busy(receiving, member.guild.id)
        player = acting.get_player(member.guild.id)
        if player is None:
            # Fleet-wide "one bot per channel": the assignment is taken before the bot joins.
            acting = await fleet.take_voice(acting, member.guild.id, channel.id)
            player = acting.get_player(member.guild.id)
        if player is None:
            try:
                player = await acting.join(
                    _as_seen_by(acting, channel), text_channel_id=interaction.channel_id
                )
            except BaseException:
                fleet.release_voice(acting, member.guild.id)
                raise
        fleet.mark_used(acting, member.guild.id)
        tracks = list(result.tracks) if isinstance(result, wavelink.Playlist) else [result[0]]
        for track in tracks:
            track.extras = {"requester_id": str(member.id), "requester": member.display_name}
        playable = [t for t in tracks if _fits(acting, t)]
        if not playable:
            acting.check_track(tracks[0])  # raises the length error
        room = acting.queue_room(player)
        if room == 0:
            raise MusicError(f"The queue is full ({acting.config.queue_limit} tracks).")
        added = playable[:room]
        player.queue.put(added)
        if player.current is None and not player.playing:
            first = player.queue.get()
            try:
                await player.play(first)
            except AudioBackendUnavailable:
                player.queue.put_at(0, first)  # still first in line once the backend is back
                raise
    skipped = len(tracks) - len(added)
    if isinstance(result, wavelink.Playlist):
        answer = f"Added {len(added)} track(s) from **{result.name[:80]}**."
    elif player.current is added[0]:
        answer = f"Now playing {_describe(added[0])}."
    else:
        answer = f"Added {_describe(added[0])} to the queue (position {len(player.queue)})."
    if skipped:
        answer += f" Skipped {skipped} (too long or the queue is full)."
    return f"**{acting.name}** in {player.channel.mention if player.channel else channel.mention}: {answer}"


async def within_deadline(
    interaction: discord.Interaction, work: Coroutine[Any, Any, T], *, ephemeral: bool = False
) -> T:
    """Run `work`; if it outlasts ANSWER_DEADLINE (or the interaction's own, shorter when it was
    forwarded from another worker), defer publicly so Discord's 3 s limit holds.

    Answering directly keeps a fast failure (no results, a full queue) a plain ephemeral reply;
    only slow searches pay for a public "thinking…" placeholder.
    """
    task = asyncio.ensure_future(work)
    if interaction.response.is_done():  # deferred already (by the bot that forwarded it here)
        return await task
    # A forwarded interaction spent part of Discord's 3 s on the way: the fleet sets a shorter one.
    deadline = float(interaction.extras.get("answer_deadline", ANSWER_DEADLINE))
    try:
        return await asyncio.wait_for(asyncio.shield(task), deadline)
    except TimeoutError:
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        interaction.extras["public_defer"] = not ephemeral
        return await task


async def send(interaction: discord.Interaction, content: str) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(content)
    else:
        await interaction.response.send_message(content)


def _fits(service: MusicService, track: wavelink.Playable) -> bool:
    try:
        service.check_track(track)
    except MusicError:
        return False
    return True


class Playback(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(description="Play a song or playlist (a URL or search text)")
    @app_commands.describe(query="A URL, or what to search for")
    @app_commands.guild_only()
    async def play(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 500]) -> None:
        check_query(query)
        receiving = self.music
        acting, _ = await _route_play(receiving, interaction)

        async def search_and_enqueue() -> str:
            return await _enqueue(interaction, receiving, await acting.search(query))

        await send(interaction, await within_deadline(interaction, search_and_enqueue()))

    @play.autocomplete("query")
    async def play_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        text = current.strip()
        if not 2 <= len(text) <= QUERY_MAX or text.startswith(("http://", "https://")):
            return []
        try:
            result = await self.music.search(text)
        except MusicError:
            return []
        tracks = result.tracks if isinstance(result, wavelink.Playlist) else result
        choices: list[app_commands.Choice[str]] = []
        for track in tracks[:AUTOCOMPLETE_RESULTS]:
            label = f"{track.title} — {track.author}"[:95]
            value = track.uri if track.uri and len(track.uri) <= 100 else track.title[:100]
            choices.append(app_commands.Choice(name=label, value=value))
        return choices

    @app_commands.command(description="Search and pick one of the top results")
    @app_commands.describe(query="What to search for")
    @app_commands.guild_only()
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        check_query(query, limit=SEARCH_QUERY_MAX)
        receiving = self.music
        acting, _ = await _route_play(receiving, interaction)
        result = await within_deadline(interaction, acting.search(query), ephemeral=True)
        tracks = (result.tracks if isinstance(result, wavelink.Playlist) else result)[:SEARCH_RESULTS]

        async def picked(pick_interaction: discord.Interaction, track: wavelink.Playable) -> None:
            await pick_interaction.response.defer()
            answer = await _enqueue(pick_interaction, receiving, [track])
            await pick_interaction.edit_original_response(content=answer, view=None)

        guild_id = interaction.guild_id or 0
        view = SearchView(
            owner_id=interaction.user.id,
            tracks=tracks,
            on_pick=picked,
            bot_id=self.music.bot_id,
            guild_id=guild_id,
        )
        lines = "\n".join(f"`{i + 1}.` {_describe(t)} by {t.author[:60]}" for i, t in enumerate(tracks))
        await interaction.response.send_message(
            f"Results for `{query[:80]}`:\n{lines}", view=view, ephemeral=True
        )

    @app_commands.command(description="Pause the music")
    @app_commands.guild_only()
    async def pause(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj_or_owner(
            interaction, player, current_requester(player), action="pause other members' tracks"
        )
        if player.current is None:
            raise NothingPlaying()
        if player.paused:
            raise MusicError("Already paused.")
        await player.pause(True)
        await interaction.response.send_message(acted(player, "Paused ⏸️"))

    @app_commands.command(description="Resume the music")
    @app_commands.guild_only()
    async def resume(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj_or_owner(
            interaction, player, current_requester(player), action="resume other members' tracks"
        )
        if not player.paused:
            raise MusicError("Not paused.")
        await player.pause(False)
        await interaction.response.send_message(acted(player, "Resumed ▶️"))

    @app_commands.command(description="Skip the current track (a vote for non-DJs)")
    @app_commands.describe(count="How many tracks to skip (DJs only for more than one)")
    @app_commands.guild_only()
    async def skip(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, 100] = 1
    ) -> None:
        check_count(count)
        player = controlled_player(self.music, interaction)
        if player.current is None:
            raise NothingPlaying()
        title = player.current.title
        own = current_requester(player) == interaction.user.id
        if not own and not await is_dj(interaction, player):
            if count > 1:
                raise MusicError("Only DJs can skip several tracks at once.")
            listeners = set(player.service.listeners(player))
            player.skip_votes.add(interaction.user.id)
            votes = len(player.skip_votes & listeners)
            required = len(listeners) // 2 + 1
            if votes < required:
                await interaction.response.send_message(f"Vote to skip: {votes}/{required}.")
                return
        for _ in range(min(count - 1, len(player.queue))):
            player.queue.delete(0)
        await player.skip(force=True)
        suffix = f" and {count - 1} more" if count > 1 else ""
        await interaction.response.send_message(acted(player, f"Skipped **{title[:90]}**{suffix} ⏭️"))

    @app_commands.command(description="Stop the music and clear the queue")
    @app_commands.guild_only()
    async def stop(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="stop the music")
        player.queue.clear()
        player.autoplay = wavelink.AutoPlayMode.partial
        if player.current is not None:
            await player.skip(force=True)
        await interaction.response.send_message(acted(player, "Stopped ⏹️ and cleared the queue."))

    @app_commands.command(description="Leave the voice channel")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="make me leave")
        channel, name = player.channel, bot_name(player)
        await player.service.leave(player)
        await interaction.response.send_message(
            f"**{name}** left {channel.mention if channel else 'the channel'} 👋"
        )

    @app_commands.command(description="Show the current track and its position")
    @app_commands.guild_only()
    async def nowplaying(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        track = player.current
        if track is None:
            raise NothingPlaying()
        embed = discord.Embed(title=track.title[:250], url=track.uri, description=f"by {track.author[:100]}")
        if who := requester_name(track):
            embed.add_field(name="Requested by", value=who)
        if track.is_stream:
            embed.add_field(name="Position", value="LIVE", inline=False)
        else:
            position = int(player.position)
            bar = progress_bar(position, track.length)
            embed.add_field(
                name="Position",
                value=f"{format_duration(position)} {bar} {format_duration(track.length)}",
                inline=False,
            )
        if player.paused:
            embed.set_footer(text="Paused")
        await interaction.response.send_message(embed=embed)

    @app_commands.command(description="Jump to a time in the current track")
    @app_commands.describe(time="Seconds (90), m:ss (1:30) or h:mm:ss (1:02:03)")
    @app_commands.guild_only()
    async def seek(self, interaction: discord.Interaction, time: app_commands.Range[str, 1, 12]) -> None:
        check_time(time)
        player = controlled_player(self.music, interaction)
        track = player.current
        if track is None:
            raise NothingPlaying()
        await require_dj_or_owner(
            interaction, player, current_requester(player), action="seek in other members' tracks"
        )
        try:
            position = parse_time(time)
        except InvalidTime as exc:
            raise MusicError(str(exc)) from None
        if track.is_stream or not track.is_seekable:
            raise MusicError("This track can't be seeked.")
        if position >= track.length:
            raise MusicError(f"The track is only {format_duration(track.length)} long.")
        await player.seek(position)
        await interaction.response.send_message(acted(player, f"Jumped to {format_duration(position)} ⏩"))

    @app_commands.command(description="Set the volume (0-150)")
    @app_commands.describe(level="Volume in percent")
    @app_commands.guild_only()
    async def volume(self, interaction: discord.Interaction, level: app_commands.Range[int, 0, 150]) -> None:
        check_volume(level)
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="change the volume")
        await player.set_volume(level)
        await interaction.response.send_message(acted(player, f"Volume set to {level}% 🔊"))


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(Playback(music))
