"""The smallest snapshot update between two states of a player (pure: no database, no Discord)."""

from __future__ import annotations

from typing import Any

import wavelink

from app.music.snapshot_state import SMALL_FIELDS, PlayerState, update_for

SMALL = (11, 12, "normal", "partial", 100, "reset", False, None)
PAUSED = (*SMALL[:6], True, None)


def track(n: int) -> wavelink.Playable:
    data: dict[str, Any] = {
        "encoded": f"QAAA{n}",
        "info": {
            "identifier": f"t{n}",
            "isSeekable": True,
            "author": "Band",
            "length": 180_000,
            "isStream": False,
            "position": 0,
            "title": f"Song {n}",
            "uri": None,
            "artworkUrl": None,
            "isrc": None,
            "sourceName": "http",
        },
        "pluginInfo": {},
        "userData": {},
    }
    return wavelink.Playable(data)  # pyright: ignore[reportArgumentType]  # Lavalink's own payload


Tracks = list[wavelink.Playable]


def state(current: wavelink.Playable | None, queue: Tracks, history: Tracks, *,
          small: tuple[Any, ...] = SMALL,
          position: int = 0, moving: bool = True, at: float = 0.0) -> PlayerState:  # fmt: skip
    return PlayerState(small, current, tuple(queue), tuple(history), position, moving, at)


def test_a_playing_player_with_nothing_changed_sets_its_position_only() -> None:
    tracks = [track(n) for n in range(5)]
    old = state(tracks[0], tracks[1:], [tracks[0]], position=1_000)
    new = state(tracks[0], tracks[1:], [tracks[0]], position=11_000, at=10.0)
    update = update_for(old, new, 10.0, refresh_after=900)
    assert update is not None and set(update) == {"$set"}
    assert set(update["$set"]) == {"position_ms", "saved_at"} and update["$set"]["position_ms"] == 11_000


def test_a_paused_player_with_nothing_changed_writes_nothing_until_its_refresh() -> None:
    tracks = [track(n) for n in range(3)]
    old = state(tracks[0], tracks[1:], [], small=PAUSED, moving=False, position=5_000)
    same = state(tracks[0], tracks[1:], [], small=PAUSED, moving=False, position=5_000)
    assert update_for(old, same, 100.0, refresh_after=900) is None
    refresh = update_for(old, same, 901.0, refresh_after=900)
    assert refresh is not None and set(refresh["$set"]) == {"position_ms", "saved_at"}
    seeked = state(tracks[0], tracks[1:], [], small=PAUSED, moving=False, position=60_000)
    seek = update_for(old, seeked, 100.0, refresh_after=900)
    assert seek is not None and seek["$set"]["position_ms"] == 60_000


def test_the_next_track_pops_the_queue_and_pushes_the_history() -> None:
    tracks = [track(n) for n in range(5)]
    old = state(tracks[0], tracks[1:], [tracks[0]])
    new = state(tracks[1], tracks[2:], [tracks[0], tracks[1]])
    update = update_for(old, new, 10.0, refresh_after=900)
    assert update is not None
    assert update["$pop"] == {"queue": -1}
    assert update["$push"]["history"]["$slice"] == -50
    assert [t["data"]["info"]["title"] for t in update["$push"]["history"]["$each"]] == ["Song 1"]
    assert update["$set"]["current"]["data"]["info"]["title"] == "Song 1"
    assert "queue" not in update["$set"] and "history" not in update["$set"]
    assert set(SMALL_FIELDS) <= set(update["$set"])


def test_queued_tracks_are_pushed_and_a_reorder_sets_the_whole_queue() -> None:
    tracks = [track(n) for n in range(6)]
    old = state(tracks[0], tracks[1:3], [])
    appended = update_for(old, state(tracks[0], tracks[1:6], []), 10.0, refresh_after=900)
    assert appended is not None and "$pop" not in appended
    assert [t["data"]["info"]["title"] for t in appended["$push"]["queue"]["$each"]] == [
        "Song 3",
        "Song 4",
        "Song 5",
    ]
    assert "$slice" not in appended["$push"]["queue"]
    shuffled = update_for(old, state(tracks[0], [tracks[2], tracks[1]], []), 10.0, refresh_after=900)
    assert shuffled is not None and [t["data"]["info"]["title"] for t in shuffled["$set"]["queue"]] == [
        "Song 2",
        "Song 1",
    ]


def test_a_volume_change_sets_the_small_fields_without_any_track() -> None:
    tracks = [track(n) for n in range(4)]
    old = state(tracks[0], tracks[1:], [tracks[0]])
    louder = state(tracks[0], tracks[1:], [tracks[0]], small=(*SMALL[:4], 70, *SMALL[5:]))
    update = update_for(old, louder, 10.0, refresh_after=900)
    assert update is not None and set(update) == {"$set"} and update["$set"]["volume"] == 70
    assert not {"current", "queue", "history"} & set(update["$set"])
