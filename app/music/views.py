"""Interactive pieces: pages (queue, history, lyrics, playlists) and the search picker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import discord
import wavelink

from app.i18n import Tr
from app.music.errors import MusicError
from app.music.formatting import format_duration, page_count, track_length
from app.music.options import check_pick
from app.music.player import ChorusPlayer, requester_name
from app.music.replies import AnsweringView

PAGE_SIZE = 10
QUEUE_PAGE_SIZE = PAGE_SIZE


def _line(t: Tr, number: int, track: wavelink.Playable) -> str:
    who = requester_name(track)
    line = f"`{number}.` {track.title[:70]} ({track_length(track, live=t('track.live'))})"
    return line + (f" · {who}" if who else "")


def queue_embed(player: ChorusPlayer, page: int, t: Tr) -> discord.Embed:
    """One page of the queue: the current track, 10 queued tracks with their requester, and the
    total duration of the queue."""
    tracks = list(player.queue)
    pages = page_count(len(tracks), PAGE_SIZE)
    page = max(0, min(page, pages - 1))
    embed = discord.Embed(title=t("queue.title"))
    current = player.current
    if current is not None:
        embed.add_field(
            name=t("queue.now_playing"),
            value=f"**{current.title[:90]}** ({track_length(current, live=t('track.live'))})",
            inline=False,
        )
    start = page * PAGE_SIZE
    lines = [_line(t, start + i + 1, track) for i, track in enumerate(tracks[start : start + PAGE_SIZE])]
    embed.description = "\n".join(lines) if lines else t("queue.empty")
    total_ms = sum(track.length for track in tracks if not track.is_stream)
    embed.set_footer(
        text=t("queue.footer", page=page + 1, pages=pages, count=len(tracks), total=format_duration(total_ms))
    )
    return embed


def history_embed(player: ChorusPlayer, page: int, t: Tr) -> discord.Embed:
    """The player's last tracks, the most recent first."""
    tracks = list(reversed(player.history))
    pages = page_count(len(tracks), PAGE_SIZE)
    page = max(0, min(page, pages - 1))
    start = page * PAGE_SIZE
    lines = [_line(t, start + i + 1, track) for i, track in enumerate(tracks[start : start + PAGE_SIZE])]
    embed = discord.Embed(title=t("history.title"), description="\n".join(lines) or t("history.empty"))
    embed.set_footer(text=t("pages.footer", page=page + 1, pages=pages))
    return embed


def text_pages_embed(title: str, pages: Sequence[str], page: int, t: Tr) -> discord.Embed:
    page = max(0, min(page, len(pages) - 1))
    embed = discord.Embed(title=title[:250], description=pages[page] or "…")
    embed.set_footer(text=t("pages.footer", page=page + 1, pages=len(pages)))
    return embed


class Pager(AnsweringView):
    """◀ ▶ over pages rendered on each press (a live queue never shows stale tracks)."""

    def __init__(
        self,
        render: Callable[[int], discord.Embed],
        pages: Callable[[], int],
        *,
        language: str,
        prefix: str = "pages",
        page: int = 0,
        timeout: float = 180.0,
    ) -> None:
        super().__init__(timeout=timeout, language=language)
        self._render = render
        self._pages = pages
        self.page = page
        self.previous: discord.ui.Button[Pager] = discord.ui.Button(
            label="◀", style=discord.ButtonStyle.secondary, custom_id=f"{prefix}:previous"
        )
        self.next: discord.ui.Button[Pager] = discord.ui.Button(
            label="▶", style=discord.ButtonStyle.secondary, custom_id=f"{prefix}:next"
        )
        self.previous.callback = self._back
        self.next.callback = self._forward
        self.add_item(self.previous)
        self.add_item(self.next)
        self._sync_buttons()

    def embed(self) -> discord.Embed:
        return self._render(self.page)

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self._pages() - 1

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = max(0, min(page, self._pages() - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    async def _back(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.page - 1)

    async def _forward(self, interaction: discord.Interaction) -> None:
        await self._show(interaction, self.page + 1)


def queue_pager(player: ChorusPlayer, t: Tr, *, page: int = 0) -> Pager:
    return Pager(
        lambda number: queue_embed(player, number, t),
        lambda: page_count(len(player.queue), PAGE_SIZE),
        language=t.language,
        prefix="queue",
        page=page,
    )


PickHandler = Callable[[discord.Interaction, wavelink.Playable], Awaitable[None]]


def search_custom_id(bot_id: int, guild_id: int) -> str:
    return f"chorus:search:{bot_id}:{guild_id}"


class SearchView(AnsweringView):
    """A select menu of the top results; only the member who searched can pick."""

    def __init__(
        self,
        *,
        owner_id: int,
        tracks: list[wavelink.Playable],
        on_pick: PickHandler,
        t: Tr,
        bot_id: int,
        guild_id: int,
    ) -> None:
        """`bot_id`: the bot whose client sends (and so holds) this view. Discord sends the pick
        to the application the interaction was for, which is another bot when the command was
        forwarded from another worker: the custom id names this one, so the pick is forwarded
        here too (docs/SCALING.md, "Forwarding")."""
        super().__init__(timeout=60.0, language=t.language)
        self.owner_id = owner_id
        self.tracks = tracks
        self.on_pick = on_pick
        self.t = t
        select: discord.ui.Select[SearchView] = discord.ui.Select(
            placeholder=t("search.placeholder"),
            custom_id=search_custom_id(bot_id, guild_id),
            options=[
                discord.SelectOption(
                    label=track.title[:100] or t("track.untitled"),
                    description=f"{track.author[:80]} · {track_length(track, live=t('track.live'))}",
                    value=str(index),
                )
                for index, track in enumerate(tracks)
            ],
        )
        select.callback = self._picked
        self.select = select
        self.add_item(select)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(self.t("search.not_yours"), ephemeral=True)
            return False
        return True

    async def _picked(self, interaction: discord.Interaction) -> None:
        try:
            track = self.tracks[check_pick(self.select.values[0], len(self.tracks))]
        except MusicError as exc:  # a forged value: a View's errors never reach the command tree
            await interaction.response.send_message(exc.render(self.t.language), ephemeral=True)
            return
        self.stop()
        await self.on_pick(interaction, track)
