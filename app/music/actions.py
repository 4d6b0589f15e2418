"""What the music controls do, and who may do it: one place for the slash commands and the
now-playing controller's buttons, so both obey the same DJ and vote rules.

Each action takes the caller's `ControlRequest` (the player in their voice channel, resolved
once), checks the rules, changes the player and returns the answer as a `Msg` (rendered in
the reader's language by the caller, which also names the bot that acted).
"""

from __future__ import annotations

import wavelink

from app.i18n import Msg
from app.music.access import current_requester, is_dj, require_dj, require_dj_or_owner
from app.music.errors import MusicError, NothingPlaying
from app.music.player import ChorusPlayer
from app.music.request import ControlRequest

LOOP_MODES: dict[str, wavelink.QueueMode] = {
    "off": wavelink.QueueMode.normal,
    "track": wavelink.QueueMode.loop,
    "queue": wavelink.QueueMode.loop_all,
}
_LOOP_CYCLE = ("off", "track", "queue")


def loop_name(player: ChorusPlayer) -> str:
    return next((name for name, mode in LOOP_MODES.items() if mode is player.queue.mode), "off")


def _title(track: wavelink.Playable) -> str:
    return track.title[:90]


async def set_paused(request: ControlRequest, paused: bool) -> Msg:
    player = request.player
    action = "pause_others" if paused else "resume_others"
    await require_dj_or_owner(request, current_requester(player), action=action)
    if paused:
        if player.current is None:
            raise NothingPlaying()
        if player.paused:
            raise MusicError("error.already_paused")
    elif not player.paused:
        raise MusicError("error.not_paused")
    await player.pause(paused)
    return Msg("done.paused" if paused else "done.resumed")


async def toggle_pause(request: ControlRequest) -> Msg:
    return await set_paused(request, not request.player.paused)


async def skip(request: ControlRequest, *, count: int = 1) -> Msg:
    """DJs and the track's requester skip at once; others vote (a majority of the listeners)."""
    player = request.player
    if player.current is None:
        raise NothingPlaying()
    title = _title(player.current)
    own = current_requester(player) == request.user_id
    if not own and not await is_dj(request):
        if count > 1:
            raise MusicError("error.skip_many_dj_only")
        listeners = set(player.service.listeners(player))
        player.skip_votes.add(request.user_id)
        votes = len(player.skip_votes & listeners)
        required = len(listeners) // 2 + 1
        if votes < required:
            return Msg("done.skip_vote", votes=votes, required=required)
    for _ in range(min(count - 1, len(player.queue))):
        player.queue.delete(0)
    await player.skip(force=True)
    if count > 1:
        return Msg("done.skipped_more", title=title, more=count - 1)
    return Msg("done.skipped", title=title)


async def skip_to(request: ControlRequest, position: int) -> Msg:
    """Drop the tracks before queue position `position` and play that one (DJs)."""
    player = request.player
    await require_dj(request, action="skipto")
    index = queue_index(player, position)
    for _ in range(index):
        player.queue.delete(0)
    target = _title(player.queue[0])
    if player.current is not None:
        await player.skip(force=True)
    else:
        first = player.queue.get()
        await player.play(first)
    return Msg("done.skipped_to", title=target, position=position)


async def stop(request: ControlRequest) -> Msg:
    player = request.player
    await require_dj(request, action="stop")
    player.queue.clear()
    player.autoplay = wavelink.AutoPlayMode.partial
    if player.current is not None:
        await player.skip(force=True)
    await player.service.channel_status.clear(player)
    return Msg("done.stopped")


async def set_loop(request: ControlRequest, mode: str) -> Msg:
    await require_dj(request, action="loop")
    request.player.queue.mode = LOOP_MODES[mode]
    return Msg("done.loop", mode=Msg(f"loop.{mode}"))


async def cycle_loop(request: ControlRequest) -> Msg:
    """off → track → queue → off (the controller's loop button)."""
    following = _LOOP_CYCLE[(_LOOP_CYCLE.index(loop_name(request.player)) + 1) % len(_LOOP_CYCLE)]
    return await set_loop(request, following)


async def shuffle(request: ControlRequest) -> Msg:
    player = request.player
    await require_dj(request, action="shuffle")
    if len(player.queue) < 2:
        raise MusicError("error.nothing_to_shuffle")
    player.queue.shuffle()
    return Msg("done.shuffled", count=len(player.queue))


async def previous(request: ControlRequest) -> Msg:
    """Play the track before the current one; the current one comes next (DJs)."""
    player = request.player
    await require_dj(request, action="previous")
    history = player.history
    current = player.current
    playing_last = current is not None and bool(history) and history[-1].encoded == current.encoded
    earlier = list(history)[:-1] if playing_last else list(history)
    if not earlier:
        raise MusicError("error.no_previous")
    target = earlier[-1]
    # Both come back into the history when they start again.
    for _ in range(len(history) - len(earlier) + 1):
        history.pop()
    if current is not None:
        player.queue.put_at(0, current)
    try:
        await player.play(target, replace=True)
    except Exception:
        if current is not None:
            player.queue.delete(0)
        history.append(target)
        if playing_last and current is not None:
            history.append(current)
        raise
    return Msg("done.previous", title=_title(target))


async def replay(request: ControlRequest) -> Msg:
    """The current track from its start (DJs, or its requester)."""
    player = request.player
    track = player.current
    if track is None:
        raise NothingPlaying()
    await require_dj_or_owner(request, current_requester(player), action="replay_others")
    if track.is_stream or not track.is_seekable:
        raise MusicError("error.not_seekable")
    await player.seek(0)
    return Msg("done.replayed", title=_title(track))


def queue_index(player: ChorusPlayer, position: int) -> int:
    """The 0-based index of a 1-based queue position, or the user-facing error."""
    length = len(player.queue)
    if not 1 <= position <= length:
        raise MusicError("error.no_track_at", position=position, count=length)
    return position - 1


def queue_slice(player: ChorusPlayer, first: int, last: int) -> tuple[int, int]:
    """0-based [start, end) of the 1-based positions first..last, all in the queue."""
    length = len(player.queue)
    if last > length:
        raise MusicError("error.no_track_at", position=last, count=length)
    return first - 1, last
