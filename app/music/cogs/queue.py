"""The queue: /queue, /shuffle, /remove, /move, /clear, /loop, /autoplay, /filter."""

from __future__ import annotations

from typing import Literal

import discord
import wavelink
from discord import app_commands
from discord.ext import commands

from app.music.access import acted, controlled_player, require_dj, require_dj_or_owner
from app.music.errors import MusicError
from app.music.filters import PRESETS, preset_filters
from app.music.options import check_choice, check_position
from app.music.player import requester_id
from app.music.service import MusicService
from app.music.views import QueueView, queue_embed

LOOP_MODES: dict[str, wavelink.QueueMode] = {
    "off": wavelink.QueueMode.normal,
    "track": wavelink.QueueMode.loop,
    "queue": wavelink.QueueMode.loop_all,
}

FilterName = Literal["bassboost", "nightcore", "vaporwave", "karaoke", "8d", "reset"]
assert set(FilterName.__args__) == set(PRESETS), "the /filter choices and the presets must match"


def _position(player_queue_length: int, position: int, *, what: str = "position") -> int:
    if not 1 <= position <= player_queue_length:
        raise MusicError(f"There is no track at {what} {position} (the queue has {player_queue_length}).")
    return position - 1


class Queue(commands.Cog):
    def __init__(self, music: MusicService) -> None:
        self.music = music

    @app_commands.command(description="Show the queue")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        view = QueueView(player)
        await interaction.response.send_message(embed=queue_embed(player, 0), view=view)

    @app_commands.command(description="Shuffle the queue")
    @app_commands.guild_only()
    async def shuffle(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="shuffle the queue")
        if len(player.queue) < 2:
            raise MusicError("Nothing to shuffle.")
        player.queue.shuffle()
        await interaction.response.send_message(acted(player, f"Shuffled {len(player.queue)} tracks 🔀"))

    @app_commands.command(description="Remove a track from the queue")
    @app_commands.describe(position="Its position in /queue")
    @app_commands.guild_only()
    async def remove(
        self, interaction: discord.Interaction, position: app_commands.Range[int, 1, 10_000]
    ) -> None:
        check_position(position)
        player = controlled_player(self.music, interaction)
        index = _position(len(player.queue), position)
        track = player.queue[index]
        await require_dj_or_owner(
            interaction, player, requester_id(track), action="remove other members' tracks"
        )
        player.queue.delete(index)
        await interaction.response.send_message(acted(player, f"Removed **{track.title[:90]}**."))

    @app_commands.command(name="move", description="Move a track to another position in the queue")
    @app_commands.describe(source="Its position now", destination="Its new position")
    @app_commands.rename(source="from", destination="to")
    @app_commands.guild_only()
    async def move(
        self,
        interaction: discord.Interaction,
        source: app_commands.Range[int, 1, 10_000],
        destination: app_commands.Range[int, 1, 10_000],
    ) -> None:
        check_position(source)
        check_position(destination)
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="reorder the queue")
        length = len(player.queue)
        src = _position(length, source, what="position")
        dst = _position(length, destination, what="position")
        track = player.queue[src]
        player.queue.delete(src)
        player.queue.put_at(dst, track)
        await interaction.response.send_message(
            acted(player, f"Moved **{track.title[:90]}** to position {destination}.")
        )

    @app_commands.command(description="Remove every upcoming track")
    @app_commands.guild_only()
    async def clear(self, interaction: discord.Interaction) -> None:
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="clear the queue")
        count = len(player.queue)
        player.queue.clear()
        await interaction.response.send_message(acted(player, f"Cleared {count} track(s) from the queue."))

    @app_commands.command(description="Repeat the track, the queue, or nothing")
    @app_commands.describe(mode="off, track or queue")
    @app_commands.guild_only()
    async def loop(self, interaction: discord.Interaction, mode: Literal["off", "track", "queue"]) -> None:
        check_choice(mode, LOOP_MODES, what="The loop mode")
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="change the loop mode")
        player.queue.mode = LOOP_MODES[mode]
        await interaction.response.send_message(acted(player, f"Loop: **{mode}** 🔁"))

    @app_commands.command(description="Keep playing related tracks when the queue ends")
    @app_commands.describe(state="on or off")
    @app_commands.guild_only()
    async def autoplay(self, interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        check_choice(state, ("on", "off"), what="The state")
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="change autoplay")
        # Both modes let wavelink advance the queue; `enabled` also adds recommendations.
        player.autoplay = wavelink.AutoPlayMode.enabled if state == "on" else wavelink.AutoPlayMode.partial
        await interaction.response.send_message(acted(player, f"Autoplay **{state}**."))

    @app_commands.command(name="filter", description="Apply an audio filter preset")
    @app_commands.describe(preset="bassboost, nightcore, vaporwave, karaoke, 8d, or reset")
    @app_commands.guild_only()
    async def filter_(self, interaction: discord.Interaction, preset: FilterName) -> None:
        check_choice(preset, PRESETS, what="The filter")
        player = controlled_player(self.music, interaction)
        await require_dj(interaction, player, action="change filters")
        await player.set_filters(preset_filters(preset), seek=True)
        player.filter_preset = preset
        message = "Filters cleared." if preset == "reset" else f"Filter **{preset}** on 🎛️"
        await interaction.response.send_message(acted(player, message))


async def setup(bot: commands.Bot, music: MusicService) -> None:
    await bot.add_cog(Queue(music))
