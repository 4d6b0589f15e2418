"""A music command's request, resolved once: who asks, from which voice channel, which bot got the
command and which bot acts.

Every music command that works on the caller's voice channel starts by resolving its interaction
into a `MusicRequest` (the caller), then either routes it (`PlayRequest`: /play, /search,
/playlist load; the acting bot is the one the fleet's router picks) or finds the player it
controls (`ControlRequest`: /skip, /pause, /queue, the controller's buttons, ...). Routing, the
queue, the DJ rules and the answers take the request instead of resolving the interaction again.

The bot running the command (`receiving`, the cog's own service) is not assumed to be the
application Discord sent the interaction to (`application_id`): a request forwarded from another
worker runs on the bot that acts (docs/SCALING.md, "Forwarding"). The plain fields (`ids()`) are
JSON-serialisable ids, what a worker needs to name the request to another; the live objects
(interaction, member, channel, services, player) are this worker's own and are never sent: the
worker that acts resolves its own from the interaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from app.i18n import Msg, Tr
from app.music.errors import NotAllowed, NotInVoice
from app.music.language import language as answer_language

if TYPE_CHECKING:
    from app.music.player import ChorusPlayer
    from app.music.service import MusicService

VoiceLike = discord.VoiceChannel | discord.StageChannel

_LIVE = {"live": True}  # field metadata: this worker's own object, not part of `ids()`


def member_of(interaction: discord.Interaction) -> discord.Member:
    if not isinstance(interaction.user, discord.Member) or interaction.guild is None:
        raise NotAllowed("error.servers_only")
    return interaction.user


def voice_channel_of(member: discord.Member) -> VoiceLike:
    voice = member.voice
    if voice is None or not isinstance(voice.channel, VoiceLike):
        raise NotInVoice()
    return voice.channel


@dataclass(frozen=True, slots=True, kw_only=True)
class MusicRequest:
    """The caller of a music command in a guild, in a voice channel."""

    guild_id: int
    channel_id: int  # the caller's voice channel
    user_id: int
    text_channel_id: int | None  # where the command was typed
    application_id: int  # the application Discord sent the interaction to
    receiving_bot_id: int  # the bot running the command (another one once forwarded)
    language: str  # the answer language, resolved by the command tree
    interaction: discord.Interaction = field(metadata=_LIVE, repr=False, compare=False)
    member: discord.Member = field(metadata=_LIVE, repr=False, compare=False)
    channel: VoiceLike = field(metadata=_LIVE, repr=False, compare=False)
    receiving: MusicService = field(metadata=_LIVE, repr=False, compare=False)

    @classmethod
    def of(
        cls, receiving: MusicService, interaction: discord.Interaction, *, language: str | None = None
    ) -> MusicRequest:
        """Resolve the caller once: not a member of a guild, or not in a voice channel, is the
        user's error. `language` overrides the interaction's (a pick answering in the language of
        the command that offered it)."""
        member = member_of(interaction)
        channel = voice_channel_of(member)
        return cls(
            guild_id=channel.guild.id,
            channel_id=channel.id,
            user_id=member.id,
            text_channel_id=interaction.channel_id,
            application_id=interaction.application_id,
            receiving_bot_id=receiving.bot_id,
            language=language or answer_language(interaction),
            interaction=interaction,
            member=member,
            channel=channel,
            receiving=receiving,
        )

    @property
    def t(self) -> Tr:
        return Tr(self.language)

    def ids(self) -> dict[str, Any]:
        """The plain ids (JSON-serialisable), without this worker's live objects."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("live")}

    def routed(self, acting: MusicService) -> PlayRequest:
        """This request, with the bot that plays for it."""
        return PlayRequest(**self._fields(), acting_bot_id=acting.bot_id, acting=acting)

    def controlling(self, player: ChorusPlayer) -> ControlRequest:
        """This request, with the player it controls (whichever bot of the fleet owns it)."""
        return ControlRequest(**self._fields(), acting_bot_id=player.service.bot_id, player=player)

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(MusicRequest)}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayRequest(MusicRequest):
    """A request to play in the caller's channel, routed: `acting` is the bot the fleet chose when
    the command arrived (confirmed again under the guild lock before it joins or queues)."""

    acting_bot_id: int
    acting: MusicService = field(metadata=_LIVE, repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlRequest(MusicRequest):
    """A request about the music in the caller's channel: `player` is the one it controls."""

    acting_bot_id: int
    player: ChorusPlayer = field(metadata=_LIVE, repr=False, compare=False)

    @property
    def acting(self) -> MusicService:
        return self.player.service

    def answer(self, message: Msg) -> str:
        """The answer in the reader's language, naming the bot that acted (it may not be the one
        that received the command)."""
        return f"{message.render(self.language)} · **{self.acting.name}**"
