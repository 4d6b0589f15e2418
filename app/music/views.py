"""Interactive pieces: the queue paginator and the search picker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord
import wavelink

from app.music.errors import MusicError
from app.music.formatting import format_duration, page_count, track_length
from app.music.options import check_pick
from app.music.player import ChorusPlayer, requester_name
from app.music.replies import AnsweringView

QUEUE_PAGE_SIZE = 10


def queue_embed(player: ChorusPlayer, page: int) -> discord.Embed:
    tracks = list(player.queue)
    pages = page_count(len(tracks), QUEUE_PAGE_SIZE)
    page = max(0, min(page, pages - 1))
    embed = discord.Embed(title="Queue")
    current = player.current
    if current is not None:
        embed.add_field(
            name="Now playing",
            value=f"**{current.title[:90]}** ({track_length(current)})",
            inline=False,
        )
    start = page * QUEUE_PAGE_SIZE
    lines = [
        f"`{start + i + 1}.` {track.title[:70]} ({track_length(track)})"
        + (f" · {who}" if (who := requester_name(track)) else "")
        for i, track in enumerate(tracks[start : start + QUEUE_PAGE_SIZE])
    ]
    embed.description = "\n".join(lines) if lines else "The queue is empty."
    total_ms = sum(t.length for t in tracks if not t.is_stream)
    embed.set_footer(text=f"Page {page + 1}/{pages} · {len(tracks)} track(s) · {format_duration(total_ms)}")
    return embed


class QueueView(AnsweringView):
    """◀ ▶ over the live queue: each press re-reads it, so pages never show stale tracks."""

    def __init__(self, player: ChorusPlayer, *, page: int = 0, timeout: float = 180.0) -> None:
        super().__init__(timeout=timeout)
        self.player = player
        self.page = page
        self._sync_buttons()

    def _pages(self) -> int:
        return page_count(len(self.player.queue), QUEUE_PAGE_SIZE)

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page <= 0
        self.next.disabled = self.page >= self._pages() - 1

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = max(0, min(page, self._pages() - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=queue_embed(self.player, self.page), view=self)

    @discord.ui.button(label="◀", style=discord.ButtonStyle.secondary, custom_id="queue:previous")
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button[QueueView]) -> None:
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="▶", style=discord.ButtonStyle.secondary, custom_id="queue:next")
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[QueueView]) -> None:
        await self._show(interaction, self.page + 1)


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
        bot_id: int,
        guild_id: int,
    ) -> None:
        """`bot_id`: the bot whose client sends (and so holds) this view. Discord sends the pick
        to the application the interaction was for, which is another bot when the command was
        forwarded from another worker: the custom id names this one, so the pick is forwarded
        here too (docs/SCALING.md, "Forwarding")."""
        super().__init__(timeout=60.0)
        self.owner_id = owner_id
        self.tracks = tracks
        self.on_pick = on_pick
        select: discord.ui.Select[SearchView] = discord.ui.Select(
            placeholder="Pick a track",
            custom_id=search_custom_id(bot_id, guild_id),
            options=[
                discord.SelectOption(
                    label=track.title[:100] or "Untitled",
                    description=f"{track.author[:80]} · {track_length(track)}",
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
            await interaction.response.send_message("Only the member who searched can pick.", ephemeral=True)
            return False
        return True

    async def _picked(self, interaction: discord.Interaction) -> None:
        try:
            track = self.tracks[check_pick(self.select.values[0], len(self.tracks))]
        except MusicError as exc:  # a forged value: a View's errors never reach the command tree
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        self.stop()
        await self.on_pick(interaction, track)
