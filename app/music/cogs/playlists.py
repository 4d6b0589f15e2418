"""Saved playlists: /playlist save|load|list|show|delete|add|remove.

Playlists belong to the Discord user, not to a bot: they follow the user across every bot of the
network. Every write goes through `app/db/playlists.py`; every answer is for the user alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import discord
import wavelink
from discord import app_commands
from discord.ext import commands
from pymongo.errors import PyMongoError

from app.db import playlists as store
from app.db.connection import interactive
from app.db.models import PlaylistTrack, UserPlaylist
from app.i18n import Tr
from app.music.access import controlled, member_of
from app.music.errors import MusicError
from app.music.formatting import format_duration, page_count
from app.music.language import tr
from app.music.options import POSITION_MAX, QUERY_MAX, check_position, check_query, check_text
from app.music.queueing import enqueue, route_play, send, within_deadline
from app.music.service import MusicService
from app.music.views import PAGE_SIZE, Pager

_log = logging.getLogger(__name__)

AUTOCOMPLETE_LIMIT = 25


@contextlib.contextmanager
def _database() -> Iterator[None]:
    """Database trouble and refused writes become short answers."""
    try:
        with interactive():
            yield
    except store.PlaylistError as exc:
        raise MusicError(exc.key, **exc.params) from None
    except PyMongoError as exc:
        _log.warning("Playlists: database unavailable (%s)", exc)
        raise MusicError("playlist.unavailable") from None


def _name(name: object) -> str:
    return check_text(name, what="playlist_name", limit=store.NAME_MAX)


def saved(track: wavelink.Playable) -> PlaylistTrack:
    return PlaylistTrack(
        encoded=track.encoded, info=dict(track.raw_data["info"]), title=track.title, uri=track.uri
    )


def playable(track: PlaylistTrack) -> wavelink.Playable:
    """The stored payload as wavelink's track: no search, no decode call."""
    data = {"encoded": track.encoded, "info": track.info, "pluginInfo": {}, "userData": {}}
    return wavelink.Playable(data)  # pyright: ignore[reportArgumentType]  # Lavalink's own payload


def _playlist_embed(playlist: UserPlaylist, page: int, t: Tr) -> discord.Embed:
    tracks = playlist.tracks
    pages = page_count(len(tracks), PAGE_SIZE)
    page = max(0, min(page, pages - 1))
    start = page * PAGE_SIZE
    lines = [
        f"`{start + i + 1}.` {track.title[:80]}" for i, track in enumerate(tracks[start : start + PAGE_SIZE])
    ]
    total = sum(int(track.info.get("length") or 0) for track in tracks if not track.info.get("isStream"))
    embed = discord.Embed(title=playlist.name[:250], description="\n".join(lines) or t("playlist.empty"))
    embed.set_footer(
        text=t("playlist.footer", page=page + 1, pages=pages, count=len(tracks), total=format_duration(total))
    )
    return embed


class PlaylistGroup(app_commands.Group, name="playlist", description="Your saved playlists, on every bot"):
    def __init__(self, music: MusicService) -> None:
        super().__init__(guild_only=True)
        self.music = music

    async def _names(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        try:
            with interactive():
                found = await store.list_playlists(interaction.user.id)
        except PyMongoError:
            return []
        text = current.strip().casefold()
        return [
            app_commands.Choice(name=playlist.name[:100], value=playlist.name[:100])
            for playlist in found
            if text in playlist.name_key
        ][:AUTOCOMPLETE_LIMIT]

    @app_commands.command(name="save", description="Save the current track and queue as a playlist")
    @app_commands.describe(name="The playlist's name")
    async def save(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        name = _name(name)
        player = controlled(self.music, interaction).player
        tracks = ([player.current] if player.current is not None else []) + list(player.queue)
        if not tracks:
            raise MusicError("error.nothing_playing")
        with _database():
            playlist = await store.create_playlist(interaction.user.id, name, [saved(t) for t in tracks])
        t = tr(interaction)
        await interaction.response.send_message(
            t("playlist.saved", name=playlist.name, count=len(playlist.tracks)), ephemeral=True
        )

    @app_commands.command(name="load", description="Add one of your playlists to the queue")
    @app_commands.describe(name="The playlist's name")
    async def load(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        name = _name(name)
        # In voice, with a bot free for the caller: checked before any read.
        request = await route_play(self.music, interaction)
        with _database():
            playlist = await store.get_playlist(interaction.user.id, name)
        if playlist is None:
            raise MusicError("playlist.not_found", name=name)
        if not playlist.tracks:
            raise MusicError("playlist.empty_cannot_load", name=playlist.name)
        tracks = [playable(track) for track in playlist.tracks]
        answer = await within_deadline(interaction, enqueue(request, tracks, collection=playlist.name))
        await send(interaction, answer)

    @app_commands.command(name="list", description="Your playlists")
    async def list_(self, interaction: discord.Interaction) -> None:
        member_of(interaction)
        with _database():
            found = await store.list_playlists(interaction.user.id)
        t = tr(interaction)
        if not found:
            await interaction.response.send_message(t("playlist.none"), ephemeral=True)
            return
        lines = [t("playlist.list_line", name=p.name, count=len(p.tracks)) for p in found]
        embed = discord.Embed(title=t("playlist.list_title"), description="\n".join(lines))
        embed.set_footer(text=t("playlist.limits", playlists=store.PLAYLISTS_MAX, tracks=store.TRACKS_MAX))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="show", description="The tracks of one of your playlists")
    @app_commands.describe(name="The playlist's name")
    async def show(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        name = _name(name)
        with _database():
            playlist = await store.get_playlist(interaction.user.id, name)
        if playlist is None:
            raise MusicError("playlist.not_found", name=name)
        t = tr(interaction)
        pager = Pager(
            lambda page: _playlist_embed(playlist, page, t),
            lambda: page_count(len(playlist.tracks), PAGE_SIZE),
            language=t.language,
            prefix="playlist",
        )
        await interaction.response.send_message(embed=pager.embed(), view=pager, ephemeral=True)

    @app_commands.command(name="delete", description="Delete one of your playlists")
    @app_commands.describe(name="The playlist's name")
    async def delete(self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        name = _name(name)
        with _database():
            deleted = await store.delete_playlist(interaction.user.id, name)
        if not deleted:
            raise MusicError("playlist.not_found", name=name)
        await interaction.response.send_message(
            tr(interaction)("playlist.deleted", name=name), ephemeral=True
        )

    @app_commands.command(name="add", description="Add a song (or a playlist link) to one of your playlists")
    @app_commands.describe(name="The playlist's name (created if new)", query="A URL, or what to search for")
    async def add(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100],
        query: app_commands.Range[str, 1, 500],
    ) -> None:
        name = _name(name)
        check_query(query, limit=QUERY_MAX)
        member_of(interaction)
        music = self.music
        music.ensure_backend()
        t = tr(interaction)
        user_id = interaction.user.id

        async def search_and_add() -> str:
            result = await music.search(query)
            found = list(result.tracks) if isinstance(result, wavelink.Playlist) else [result[0]]
            tracks = [saved(track) for track in found]
            with _database():
                if await store.get_playlist(user_id, name) is None:
                    playlist = await store.create_playlist(user_id, name, tracks)
                    count = len(playlist.tracks)
                else:
                    count = await store.append_tracks(user_id, name, tracks)
            if len(tracks) == 1:
                return t("playlist.added", title=tracks[0].title[:90], name=name, count=count)
            return t("playlist.added_many", added=len(tracks), name=name, count=count)

        answer = await within_deadline(interaction, search_and_add(), ephemeral=True)
        await send(interaction, answer, ephemeral=True)

    @app_commands.command(name="remove", description="Remove a track from one of your playlists")
    @app_commands.describe(name="The playlist's name", position="Its position in /playlist show")
    async def remove(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 100],
        position: app_commands.Range[int, 1, POSITION_MAX],
    ) -> None:
        name = _name(name)
        check_position(position)
        with _database():
            removed = await store.remove_track(interaction.user.id, name, position - 1)
        await interaction.response.send_message(
            tr(interaction)("playlist.removed", title=removed.title[:90], name=name), ephemeral=True
        )

    @load.autocomplete("name")
    @show.autocomplete("name")
    @delete.autocomplete("name")
    @add.autocomplete("name")
    @remove.autocomplete("name")
    async def name_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._names(interaction, current)


async def setup(bot: commands.Bot, music: MusicService) -> None:
    bot.tree.add_command(PlaylistGroup(music))
