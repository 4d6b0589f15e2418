"""What a player's snapshot holds, and the smallest update from one state of it to the next.

Pure functions of the player's state: no database, no Discord (see `app.music.snapshots` for the
writes). Small fields compare by value, tracks by identity: a queued track is one `Playable` from
enqueue to play, and holding the tuples here keeps their identities from being reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import wavelink

from app.db.models import PlayerSnapshot, SavedTrack, utcnow
from app.music.player import HISTORY_SIZE, ChorusPlayer


def saved_track(track: wavelink.Playable) -> SavedTrack:
    return SavedTrack(data=dict(track.raw_data), extras=dict(track.extras))


def restored_track(saved: SavedTrack) -> wavelink.Playable:
    track = wavelink.Playable(saved.data)  # pyright: ignore[reportArgumentType]  # Lavalink's own payload
    track.extras = saved.extras
    return track


def take_snapshot(bot_id: int, player: ChorusPlayer, *, epoch: int = 0) -> PlayerSnapshot | None:
    if player.guild is None or player.channel is None:
        return None
    return PlayerSnapshot(
        epoch=epoch,
        bot_id=bot_id,
        guild_id=player.guild.id,
        voice_channel_id=player.channel.id,
        text_channel_id=player.text_channel_id,
        current=saved_track(player.current) if player.current is not None else None,
        position_ms=_position(player),
        queue=[saved_track(track) for track in player.queue],
        queue_mode=player.queue.mode.name,
        autoplay=player.autoplay.name,
        volume=player.volume,
        filter_preset=player.filter_preset,
        paused=player.paused,
        history=[saved_track(track) for track in player.history],
        controller_message_id=player.controller_message_id,
        saved_at=utcnow(),
    )


def _position(player: ChorusPlayer) -> int:
    return int(player.position) if player.stranded_position is None else player.stranded_position


Tracks = tuple[wavelink.Playable, ...]


@dataclass(frozen=True, slots=True)
class PlayerState:
    """What a player's snapshot holds, cheap to compare: the small fields by value, the tracks by
    identity (a queued track is one object from enqueue to play; holding them here keeps their
    identities from being reused)."""

    small: tuple[Any, ...]  # every scalar field but the position (see SMALL_FIELDS)
    current: wavelink.Playable | None
    queue: Tracks
    history: Tracks
    position_ms: int
    moving: bool  # playing, not paused, not stranded: the position advances with the clock
    at: float  # loop time the position was read

    @classmethod
    def of(cls, player: ChorusPlayer, now: float) -> PlayerState | None:
        if player.guild is None or player.channel is None:
            return None
        small = (
            player.channel.id,
            player.text_channel_id,
            player.queue.mode.name,
            player.autoplay.name,
            player.volume,
            player.filter_preset,
            player.paused,
            player.controller_message_id,
        )
        current = player.current
        moving = current is not None and not player.paused and player.stranded_position is None
        return cls(small, current, tuple(player.queue), tuple(player.history), _position(player), moving, now)


# What a failed delete leaves: the next sweep deletes again (or, should a player be there
# again, writes it whole).
GONE = PlayerState((), None, (), (), 0, False, 0.0)

SMALL_FIELDS = (
    "voice_channel_id",
    "text_channel_id",
    "queue_mode",
    "autoplay",
    "volume",
    "filter_preset",
    "paused",
    "controller_message_id",
)


def _same(old: Tracks, new: Tracks) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def _list_update(field: str, old: Tracks, new: Tracks, *, maxlen: int | None = None) -> dict[str, Any]:
    """The smallest update operator turning the stored list `old` into `new`: `$pop` of the
    first item (a track started), `$push` of appended items (queued, or played for the history,
    capped with `$slice`), else a `$set` of the whole list."""
    if old and _same(old[1:], new):
        return {"$pop": {field: -1}}
    for added in range(1, min(len(new), 10) + 1):
        combined = old + new[-added:]
        if maxlen is not None:
            combined = combined[-maxlen:]
        if _same(combined, new):
            each: dict[str, Any] = {"$each": [saved_track(track).model_dump() for track in new[-added:]]}
            if maxlen is not None:
                each["$slice"] = -maxlen
            return {"$push": {field: each}}
    return {"$set": {field: [saved_track(track).model_dump() for track in new]}}


def update_for(
    old: PlayerState, new: PlayerState, now: float, *, refresh_after: float
) -> dict[str, Any] | None:
    """The update that brings the stored snapshot `old` to `new`, or None if none is needed."""
    lists = not (_same(old.queue, new.queue) and _same(old.history, new.history))
    changed = (
        lists
        or old.small != new.small
        or old.current is not new.current
        or old.moving != new.moving
        or (not new.moving and old.position_ms != new.position_ms)  # a seek while paused
    )
    if not changed and not new.moving and now - old.at < refresh_after:
        return None
    # Position and `saved_at` travel with every write: "at saved_at it was at position_ms".
    fields: dict[str, Any] = {"position_ms": new.position_ms, "saved_at": utcnow()}
    update: dict[str, Any] = {"$set": fields}
    if not changed:
        return update
    fields.update(zip(SMALL_FIELDS, new.small, strict=True))
    if old.current is not new.current:
        fields["current"] = saved_track(new.current).model_dump() if new.current is not None else None
    for field, old_list, new_list, maxlen in (
        ("queue", old.queue, new.queue, None),
        ("history", old.history, new.history, HISTORY_SIZE),
    ):
        if _same(old_list, new_list):
            continue
        for operator, change in _list_update(field, old_list, new_list, maxlen=maxlen).items():
            update.setdefault(operator, {}).update(change)
    return update
