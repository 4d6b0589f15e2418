"""Getting tracks into the right player: routing, joining, the queue limit, answering in time.

Shared by `/play`, `/search` and `/playlist load`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import discord
import wavelink
from pymongo.errors import PyMongoError

from app.db.connection import interactive
from app.i18n import Tr
from app.music.errors import AllBotsBusy, AudioBackendUnavailable, MusicError
from app.music.formatting import track_length
from app.music.request import MusicRequest, PlayRequest, VoiceLike
from app.music.service import MusicService

_log = logging.getLogger(__name__)

T = TypeVar("T")

ANSWER_DEADLINE = 2.0  # seconds: Discord wants a first answer within 3


def describe_track(track: wavelink.Playable, t: Tr) -> str:
    return f"**{track.title[:90]}** ({track_length(track, live=t('track.live'))})"


async def route_play(receiving: MusicService, interaction: discord.Interaction) -> PlayRequest:
    """Resolve the caller once and pick the bot that will play for them, with the checks that must
    pass before anything is deferred (so their errors stay ephemeral)."""
    caller = MusicRequest.of(receiving, interaction)
    acting = await receiving.fleet.choose_for_play(receiving, caller.guild_id, caller.channel_id)
    if acting is None:
        raise await all_busy(receiving, caller.guild_id)
    player = acting.get_player(caller.guild_id)
    if player is None:
        acting.check_can_join(as_seen_by(acting, caller.channel))
    acting.ensure_backend(player)
    return caller.routed(acting)


def as_seen_by(service: MusicService, channel: VoiceLike) -> VoiceLike:
    """The same voice channel from the acting bot's own cache (each bot has its own objects)."""
    guild = service.client.get_guild(channel.guild.id)
    own = guild.get_channel(channel.id) if guild is not None else None
    if not isinstance(own, VoiceLike):
        raise MusicError("error.bot_cannot_see", bot=service.name, channel=channel.mention)
    return own


async def all_busy(receiving: MusicService, guild_id: int) -> AllBotsBusy:
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


def _fits(service: MusicService, track: wavelink.Playable) -> bool:
    try:
        service.check_track(track)
    except MusicError:
        return False
    return True


def _still_serving(request: MusicRequest) -> MusicService | None:
    """The bot routed for `request` when it still plays in the caller's channel: the router's
    first rule would pick it again (one bot per channel), so it need not be asked twice."""
    if not isinstance(request, PlayRequest):
        return None
    player = request.acting.get_player(request.guild_id)
    if player is not None and player.channel is not None and player.channel.id == request.channel_id:
        return request.acting
    return None


async def enqueue(
    request: MusicRequest, tracks: Sequence[wavelink.Playable], *, collection: str | None = None
) -> str:
    """Join if needed, queue `tracks` (a playlist's, `collection` names it), start playing.
    Returns the answer. Under the fleet-wide guild lock: two /play at once in one channel get one
    bot and one queue. The bot chosen when the command arrived is confirmed here (the search
    took time: another /play may have brought a bot into the channel, or taken this one)."""
    receiving = request.receiving
    fleet = receiving.fleet
    guild_id = request.guild_id
    async with fleet.lock(guild_id):
        acting = _still_serving(request) or await fleet.choose_for_play(
            receiving, guild_id, request.channel_id
        )
        if acting is None:
            raise await all_busy(receiving, guild_id)
        player = acting.get_player(guild_id)
        if player is None:
            # Fleet-wide "one bot per channel": the assignment is taken before the bot joins.
            acting = await fleet.take_voice(acting, guild_id, request.channel_id)
            player = acting.get_player(guild_id)
        if player is None:
            try:
                player = await acting.join(
                    as_seen_by(acting, request.channel), text_channel_id=request.text_channel_id
                )
            except BaseException:
                fleet.release_voice(acting, guild_id)
                raise
        fleet.mark_used(acting, guild_id)
        requester = {"requester_id": str(request.user_id), "requester": request.member.display_name}
        for track in tracks:
            track.extras = requester
        playable = [track for track in tracks if _fits(acting, track)]
        if not playable:
            acting.check_track(tracks[0])  # raises the length error
        room = acting.queue_room(player)
        if room == 0:
            raise MusicError("error.queue_full", limit=acting.config.queue_limit)
        added = playable[:room]
        player.queue.put(added)
        if player.current is None and not player.playing:
            first = player.queue.get()
            try:
                await player.play(first)
            except AudioBackendUnavailable:
                player.queue.put_at(0, first)  # still first in line once the backend is back
                raise
    t = request.t
    skipped = len(tracks) - len(added)
    if collection is not None:
        answer = t("play.added_collection", count=len(added), name=collection[:80])
    elif player.current is added[0]:
        answer = t("play.now_playing", track=describe_track(added[0], t))
    else:
        answer = t("play.added", track=describe_track(added[0], t), position=len(player.queue))
    if skipped:
        answer += " " + t("play.skipped", count=skipped)
    where = player.channel.mention if player.channel else request.channel.mention
    return f"**{acting.name}** · {where}: {answer}"


async def within_deadline(
    interaction: discord.Interaction, work: Coroutine[Any, Any, T], *, ephemeral: bool = False
) -> T:
    """Run `work`; if it outlasts ANSWER_DEADLINE (or the interaction's own, shorter when it was
    forwarded from another worker), defer publicly so Discord's 3 s limit holds.

    Answering directly keeps a fast failure (no results, a full queue) a plain ephemeral reply;
    only slow searches pay for a public "thinking…" placeholder.

    The work runs in the command's own task and the deadline is a timer that starts the defer
    only when it fires: a fast command (almost all) makes no extra task, shield or waiter, each of
    which cost a pass of the event loop before the answer could go out (under a burst of /play,
    a pass waits behind every other interaction's callbacks). The answer is sent after the defer
    completed, if one was started, so it goes out as the defer's followup.
    """
    if interaction.response.is_done():  # deferred already (by the bot that forwarded it here)
        return await work
    # A forwarded interaction spent part of Discord's 3 s on the way: the fleet sets a shorter one.
    deadline = float(interaction.extras.get("answer_deadline", ANSWER_DEADLINE))
    deferring: asyncio.Task[None] | None = None

    def defer() -> None:
        nonlocal deferring
        deferring = asyncio.ensure_future(_defer(interaction, ephemeral=ephemeral))

    timer = asyncio.get_running_loop().call_later(deadline, defer)
    try:
        return await work
    finally:
        timer.cancel()
        if deferring is not None:
            await deferring


async def _defer(interaction: discord.Interaction, *, ephemeral: bool) -> None:
    if interaction.response.is_done():
        return
    await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    interaction.extras["public_defer"] = not ephemeral


async def send(interaction: discord.Interaction, content: str, **extra: Any) -> None:
    if interaction.response.is_done():
        await interaction.followup.send(content, **extra)
    else:
        await interaction.response.send_message(content, **extra)
