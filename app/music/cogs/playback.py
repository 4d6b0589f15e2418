"""Playback: /play, /search, /pause, /resume, /skip, /skipto, /stop, /leave, /nowplaying, /seek,
/replay, /volume."""

from __future__ import annotations

import discord
import wavelink
from discord import app_commands
from discord.ext import commands

from app.i18n import Msg
from app.music import actions
from app.music.access import bot_name, controlled, current_requester, require_dj, require_dj_or_owner
from app.music.controller import controller_view
from app.music.errors import MusicError, NothingPlaying
from app.music.formatting import format_duration, parse_time, progress_bar
from app.music.options import (
    QUERY_MAX,
    SEARCH_QUERY_MAX,
    check_count,
    check_position,
    check_query,
    check_time,
    check_volume,
)
from app.music.player import requester_name
from app.music.queueing import describe_track, enqueue, route_play, send, within_deadline
from app.music.request import MusicRequest
from app.music.search_cache import Suggestion
from app.music.service import MusicService
from app.music.views import SearchView

SEARCH_RESULTS = 5


class Playback(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(description="Play a song or playlist (a URL or search text)")
    @app_commands.describe(query="A URL, or what to search for")
    @app_commands.guild_only()
    async def play(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 500]) -> None:
        check_query(query)
        request = await route_play(self.music, interaction)

        async def search_and_enqueue() -> str:
            result = await request.acting.search(query)
            if isinstance(result, wavelink.Playlist):
                return await enqueue(request, list(result.tracks), collection=result.name)
            return await enqueue(request, [result[0]])

        await send(interaction, await within_deadline(interaction, search_and_enqueue()))

    @play.autocomplete("query")
    async def play_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        text = current.strip()
        if not 2 <= len(text) <= QUERY_MAX or text.startswith(("http://", "https://")):
            return []
        music = self.music

        async def search() -> list[Suggestion]:
            try:
                result = await music.search(text)
            except MusicError:
                return []
            tracks = result.tracks if isinstance(result, wavelink.Playlist) else result
            suggestions: list[Suggestion] = []
            for track in tracks:
                label = f"{track.title} — {track.author}"[:95]
                value = track.uri if track.uri and len(track.uri) <= 100 else track.title[:100]
                suggestions.append(Suggestion(label=label, value=value))
            return suggestions

        found = await music.autocomplete.suggest(text, search)
        return [app_commands.Choice(name=s.label, value=s.value) for s in found]

    @app_commands.command(description="Search and pick one of the top results")
    @app_commands.describe(query="What to search for")
    @app_commands.guild_only()
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 200]) -> None:
        check_query(query, limit=SEARCH_QUERY_MAX)
        request = await route_play(self.music, interaction)
        t = request.t
        result = await within_deadline(interaction, request.acting.search(query), ephemeral=True)
        tracks = (result.tracks if isinstance(result, wavelink.Playlist) else result)[:SEARCH_RESULTS]

        async def picked(pick_interaction: discord.Interaction, track: wavelink.Playable) -> None:
            await pick_interaction.response.defer()
            # The picker may have moved since the search: resolved and routed again (answered in the
            # language of the /search).
            pick = MusicRequest.of(request.receiving, pick_interaction, language=request.language)
            answer = await enqueue(pick, [track])
            await pick_interaction.edit_original_response(content=answer, view=None)

        view = SearchView(owner_id=interaction.user.id, tracks=tracks, on_pick=picked, t=t)
        lines = "\n".join(
            t("search.line", number=i + 1, track=describe_track(track, t), author=track.author[:60])
            for i, track in enumerate(tracks)
        )
        await send(interaction, t("search.results", query=query[:80], lines=lines), view=view, ephemeral=True)

    @app_commands.command(description="Pause the music")
    @app_commands.guild_only()
    async def pause(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.set_paused(request, True)
        await interaction.response.send_message(request.answer(done))
        await request.acting.controllers.refresh(request.player)

    @app_commands.command(description="Resume the music")
    @app_commands.guild_only()
    async def resume(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.set_paused(request, False)
        await interaction.response.send_message(request.answer(done))
        await request.acting.controllers.refresh(request.player)

    @app_commands.command(description="Skip the current track (a vote for non-DJs)")
    @app_commands.describe(count="How many tracks to skip (DJs only for more than one)")
    @app_commands.guild_only()
    async def skip(
        self, interaction: discord.Interaction, count: app_commands.Range[int, 1, 100] = 1
    ) -> None:
        check_count(count)
        request = controlled(self.music, interaction)
        done = await actions.skip(request, count=count)
        if done.key == "done.skip_vote":
            await interaction.response.send_message(done.render(request.language))
            return
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Skip to a track of the queue (the ones before it are dropped)")
    @app_commands.describe(position="Its position in /queue")
    @app_commands.guild_only()
    async def skipto(
        self, interaction: discord.Interaction, position: app_commands.Range[int, 1, 10_000]
    ) -> None:
        check_position(position)
        request = controlled(self.music, interaction)
        done = await actions.skip_to(request, position)
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Stop the music and clear the queue")
    @app_commands.guild_only()
    async def stop(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.stop(request)
        await interaction.response.send_message(request.answer(done))
        await request.acting.controllers.refresh(request.player)

    @app_commands.command(description="Leave the voice channel")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        player = request.player
        await require_dj(request, action="leave")
        channel, name = player.channel, bot_name(player)
        await player.service.leave(player)
        t = request.t
        where = channel.mention if channel else t("leave.the_channel")
        await interaction.response.send_message(t("done.left", bot=name, channel=where))

    @app_commands.command(description="Show the current track and its position")
    @app_commands.guild_only()
    async def nowplaying(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        player = request.player
        track = player.current
        if track is None:
            raise NothingPlaying()
        t = request.t
        embed = discord.Embed(
            title=track.title[:250], url=track.uri, description=t("nowplaying.by", author=track.author[:100])
        )
        if who := requester_name(track):
            embed.add_field(name=t("controller.requested_by"), value=who)
        if track.is_stream:
            embed.add_field(name=t("nowplaying.position"), value=t("track.live"), inline=False)
        else:
            position = int(player.position)
            bar = progress_bar(position, track.length)
            embed.add_field(
                name=t("nowplaying.position"),
                value=f"{format_duration(position)} {bar} {format_duration(track.length)}",
                inline=False,
            )
        embed.add_field(name=t("controller.loop_mode"), value=t(f"loop.{actions.loop_name(player)}"))
        if player.paused:
            embed.set_footer(text=t("controller.paused"))
        # The controller's buttons: they act on the player of whoever presses them, any time.
        await interaction.response.send_message(embed=embed, view=controller_view(player, t))

    @app_commands.command(description="Jump to a time in the current track")
    @app_commands.describe(time="Seconds (90), m:ss (1:30) or h:mm:ss (1:02:03)")
    @app_commands.guild_only()
    async def seek(self, interaction: discord.Interaction, time: app_commands.Range[str, 1, 12]) -> None:
        check_time(time)
        request = controlled(self.music, interaction)
        player = request.player
        track = player.current
        if track is None:
            raise NothingPlaying()
        await require_dj_or_owner(request, current_requester(player), action="seek_others")
        position = parse_time(time)
        if track.is_stream or not track.is_seekable:
            raise MusicError("error.not_seekable")
        if position >= track.length:
            raise MusicError("error.seek_past_end", length=format_duration(track.length))
        await player.seek(position)
        done = Msg("done.seeked", time=format_duration(position))
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Play the current track again from its start")
    @app_commands.guild_only()
    async def replay(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.replay(request)
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Set the volume (0-150)")
    @app_commands.describe(level="Volume in percent")
    @app_commands.guild_only()
    async def volume(self, interaction: discord.Interaction, level: app_commands.Range[int, 0, 150]) -> None:
        check_volume(level)
        request = controlled(self.music, interaction)
        await require_dj(request, action="volume")
        await request.player.set_volume(level)
        await interaction.response.send_message(request.answer(Msg("done.volume", level=level)))


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(Playback(music))
