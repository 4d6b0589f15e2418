"""The queue: /queue, /shuffle, /remove, /move, /clear, /loop, /autoplay, /filter."""

from __future__ import annotations

from typing import Literal

import discord
import wavelink
from discord import app_commands
from discord.ext import commands

from app.i18n import Msg
from app.music import actions
from app.music.access import controlled, dj_only, is_dj, require_dj
from app.music.filters import PRESETS, preset_filters
from app.music.options import RANGE_MAX, check_choice, check_position, check_range
from app.music.player import requester_id
from app.music.service import MusicService
from app.music.views import queue_pager

FilterName = Literal["bassboost", "nightcore", "vaporwave", "karaoke", "8d", "reset"]
assert set(FilterName.__args__) == set(PRESETS), "the /filter choices and the presets must match"


class Queue(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(description="Show the queue")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        pager = queue_pager(request.player, request.t)
        await interaction.response.send_message(embed=pager.embed(), view=pager)

    @app_commands.command(description="Shuffle the queue")
    @app_commands.guild_only()
    async def shuffle(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        done = await actions.shuffle(request)
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Remove a track, or a range of tracks, from the queue")
    @app_commands.describe(positions="A position in /queue (3) or a range (3-7)")
    @app_commands.guild_only()
    async def remove(
        self, interaction: discord.Interaction, positions: app_commands.Range[str, 1, RANGE_MAX]
    ) -> None:
        first, last = check_range(positions)
        request = controlled(self.music, interaction)
        player = request.player
        start, end = actions.queue_slice(player, first, last)
        tracks = [player.queue[index] for index in range(start, end)]
        # Members without DJ rights remove only tracks they added themselves.
        if any(requester_id(track) != request.user_id for track in tracks) and not await is_dj(request):
            raise dj_only("remove_others")
        for _ in tracks:
            player.queue.delete(start)
        if len(tracks) == 1:
            done = Msg("done.removed", title=tracks[0].title[:90])
        else:
            done = Msg("done.removed_many", count=len(tracks), first=first, last=last)
        await interaction.response.send_message(request.answer(done))
        await player.service.controllers.refresh(player)

    @app_commands.command(name="move", description="Move a track, or a range of tracks, to another position")
    @app_commands.describe(source="Its position now (3) or a range (3-7)", destination="The new position")
    @app_commands.rename(source="from", destination="to")
    @app_commands.guild_only()
    async def move(
        self,
        interaction: discord.Interaction,
        source: app_commands.Range[str, 1, RANGE_MAX],
        destination: app_commands.Range[int, 1, 10_000],
    ) -> None:
        first, last = check_range(source)
        check_position(destination)
        request = controlled(self.music, interaction)
        player = request.player
        await require_dj(request, action="move")
        start, end = actions.queue_slice(player, first, last)
        moved = [player.queue[index] for index in range(start, end)]
        rest = len(player.queue) - len(moved)
        target = actions.queue_index(player, destination) if rest else 0
        target = min(target, rest)  # positions after the moved block count without it
        for _ in moved:
            player.queue.delete(start)
        for offset, track in enumerate(moved):
            player.queue.put_at(target + offset, track)
        if len(moved) == 1:
            done = Msg("done.moved", title=moved[0].title[:90], position=target + 1)
        else:
            done = Msg("done.moved_many", count=len(moved), position=target + 1)
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(description="Remove every upcoming track")
    @app_commands.guild_only()
    async def clear(self, interaction: discord.Interaction) -> None:
        request = controlled(self.music, interaction)
        player = request.player
        await require_dj(request, action="clear")
        count = len(player.queue)
        player.queue.clear()
        await interaction.response.send_message(request.answer(Msg("done.cleared", count=count)))
        await player.service.controllers.refresh(player)

    @app_commands.command(description="Repeat the track, the queue, or nothing")
    @app_commands.describe(mode="off, track or queue")
    @app_commands.guild_only()
    async def loop(self, interaction: discord.Interaction, mode: Literal["off", "track", "queue"]) -> None:
        check_choice(mode, actions.LOOP_MODES, what="loop")
        request = controlled(self.music, interaction)
        done = await actions.set_loop(request, mode)
        await interaction.response.send_message(request.answer(done))
        await request.acting.controllers.refresh(request.player)

    @app_commands.command(description="Keep playing related tracks when the queue ends")
    @app_commands.describe(state="on or off")
    @app_commands.guild_only()
    async def autoplay(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="state")
        request = controlled(self.music, interaction)
        player = request.player
        await require_dj(request, action="autoplay")
        # Both modes let wavelink advance the queue; `enabled` also adds recommendations.
        player.autoplay = wavelink.AutoPlayMode.enabled if state == "on" else wavelink.AutoPlayMode.partial
        done = Msg("done.autoplay", state=Msg(f"state.{state}"))
        await interaction.response.send_message(request.answer(done))

    @app_commands.command(name="filter", description="Apply an audio filter preset")
    @app_commands.describe(preset="bassboost, nightcore, vaporwave, karaoke, 8d, or reset")
    @app_commands.guild_only()
    async def filter_(self, interaction: discord.Interaction, preset: FilterName) -> None:
        check_choice(preset, PRESETS, what="filter")
        request = controlled(self.music, interaction)
        player = request.player
        await require_dj(request, action="filter")
        await player.set_filters(preset_filters(preset), seek=True)
        player.filter_preset = preset
        done = Msg("done.filters_cleared") if preset == "reset" else Msg("done.filter", preset=preset)
        await interaction.response.send_message(request.answer(done))


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(Queue(music))
