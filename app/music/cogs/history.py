"""What played: /history, /previous, /lyrics."""

from __future__ import annotations

import discord
import wavelink
from discord import app_commands
from discord.ext import commands

from app.music import actions
from app.music.access import controlled
from app.music.errors import AudioBackendUnavailable, NothingPlaying
from app.music.formatting import page_count
from app.music.language import tr
from app.music.lyrics import Lyrics, pages, player_lyrics, track_lyrics
from app.music.options import SEARCH_QUERY_MAX, check_query
from app.music.queueing import within_deadline
from app.music.service import MusicService
from app.music.views import PAGE_SIZE, Pager, history_embed, text_pages_embed


class History(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(description="The tracks played here lately (the last 50)")
    @app_commands.guild_only()
    async def history(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        player, t = request.player, request.t
        pager = Pager(
            lambda page: history_embed(player, page, t),
            lambda: page_count(len(player.history), PAGE_SIZE),
            language=t.language,
            prefix="history",
        )
        await interaction.response.send_message(embed=pager.embed(), view=pager)

    @app_commands.command(description="Play the previous track again (the current one comes next)")
    @app_commands.guild_only()
    async def previous(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.previous(request)
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="The lyrics of the current track, or of a song you name")
    @app_commands.describe(query="A song to look up (default: what plays in your voice channel)")
    @app_commands.guild_only()
    async def lyrics(
        self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 200] | None = None
    ) -> None:
        t = tr(interaction)
        if query is not None:
            check_query(query, limit=SEARCH_QUERY_MAX)
            music = self.music

            async def look_up() -> tuple[str, Lyrics | None]:
                result = await music.search(query)
                tracks = result.tracks if isinstance(result, wavelink.Playlist) else result
                node = music.nodes.best()
                if node is None:
                    raise AudioBackendUnavailable()
                return tracks[0].title, await track_lyrics(node, tracks[0].encoded)

            title, found = await within_deadline(interaction, look_up())
        else:
            player = controlled(self.music, interaction).player
            current = player.current
            if current is None:
                raise NothingPlaying()
            title = current.title
            found = await within_deadline(interaction, player_lyrics(player))
        if found is None:
            text = t("lyrics.none", title=title[:90])
            if interaction.response.is_done():
                await interaction.followup.send(text)
            else:
                await interaction.response.send_message(text)
            return
        lyric_pages = pages(found.text)
        heading = t("lyrics.title", title=title[:200])
        source = found.provider or found.source

        def render(page: int) -> discord.Embed:
            embed = text_pages_embed(heading, lyric_pages, page, t)
            if source:
                embed.set_footer(
                    text=t("lyrics.footer", page=page + 1, pages=len(lyric_pages), source=source[:60])
                )
            return embed

        pager = Pager(render, lambda: len(lyric_pages), language=t.language, prefix="lyrics")
        if interaction.response.is_done():
            await interaction.followup.send(embed=pager.embed(), view=pager)
        else:
            await interaction.response.send_message(embed=pager.embed(), view=pager)


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(History(music))
