"""What the music layer needs from the fleet above it, as a small interface passed in.

The fleet (`app/bots`) knows every bot; the music of one bot does not, yet a `/play` received by
bot A may be served by bot B, and "never two bots in one channel" is a fleet-wide rule. So each
`MusicService` is handed a `MusicFleet`, implemented by the fleet's router; the music layer
never imports the fleet.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.music.player import ChorusPlayer
    from app.music.service import MusicService


class ActsElsewhere(Exception):  # a routing outcome, not a failure
    """The bot that must act on this request runs on another worker of the fleet: the fleet
    forwards the interaction there (raised before anything was answered) instead of acting."""

    def __init__(self, bot_id: int) -> None:
        super().__init__(f"bot {bot_id} acts on another worker")
        self.bot_id = bot_id


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite link for one more bot of the network (recorded PENDING_INVITE by the fleet)."""

    client_id: int
    name: str
    url: str


class MusicFleet(Protocol):
    """The fleet as the music of one bot sees it."""

    def bot_ids(self) -> frozenset[int]:
        """Every bot of the network: they are not listeners in a voice channel."""
        ...

    def lock(self, guild_id: int) -> AbstractAsyncContextManager[object]:
        """Held while a request for the guild picks its bot and joins (fleet-wide)."""
        ...

    def services_in_guild(self, guild_id: int) -> list[MusicService]:
        """The music services of our ready bots that are members of the guild."""
        ...

    def player_in_channel(self, guild_id: int, channel_id: int) -> ChorusPlayer | None:
        """The player of whichever of our bots is in that voice channel. Raises ActsElsewhere
        when that bot runs on another worker."""
        ...

    async def choose_for_play(
        self, receiving: MusicService, guild_id: int, channel_id: int
    ) -> MusicService | None:
        """Who plays for a caller in `channel_id`; None when every bot of ours there is busy.
        Raises ActsElsewhere when the chosen bot runs on another worker."""
        ...

    async def take_voice(self, service: MusicService, guild_id: int, channel_id: int) -> MusicService:
        """Assign the channel to `service`'s bot before it joins (fleet-wide, atomic). Returns the
        service that serves the channel: `service`, or another bot of this worker already there.
        Raises ActsElsewhere when a bot of another worker holds it. Call under `lock(guild_id)`."""
        ...

    def release_voice(self, service: MusicService, guild_id: int) -> None:
        """The bot's player in the guild ended (or never joined): free its channel, in the
        background, unless the bot has a player there again by then."""
        ...

    async def clean_voice(self, service: MusicService) -> None:
        """The bot's players are restored: drop the assignments an older owner of it left."""
        ...

    def mark_used(self, service: MusicService, guild_id: int) -> None: ...

    async def invite_for(self, guild_id: int) -> Invite | None:
        """An invite for one more bot of the network in the guild, or None."""
        ...

    def lease_fenced(self, bot_id: int) -> None:
        """A write of this bot fenced by its lease epoch was refused (a newer owner wrote first):
        the fleet checks the bot's lease, and stops the bot here if it is lost."""
        ...
