"""Saved playlists of Discord users: every read and write of `user_playlists` is here.

A user's playlists follow them across every bot of the network (keyed by user, not bot). Limits
hold in the database's own conditions where one write can check them (a playlist never grows
past `TRACKS_MAX`); the count of playlists per user is checked before the insert (a user racing
their own saves could at worst end one over the limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.db.models import PlaylistTrack, UserPlaylist, utcnow

PLAYLISTS_MAX = 25
TRACKS_MAX = 500
NAME_MAX = 100


class PlaylistError(Exception):
    """A refused playlist write; `key` and `params` name the user-facing message."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def name_key(name: str) -> str:
    return name.strip().casefold()


async def list_playlists(user_id: int) -> list[UserPlaylist]:
    return await UserPlaylist.find(UserPlaylist.user_id == user_id).sort("+name_key").to_list()


async def get_playlist(user_id: int, name: str) -> UserPlaylist | None:
    return await UserPlaylist.find_one(
        UserPlaylist.user_id == user_id, UserPlaylist.name_key == name_key(name)
    )


async def _count(user_id: int) -> int:
    return await UserPlaylist.get_pymongo_collection().count_documents({"user_id": user_id})


async def create_playlist(user_id: int, name: str, tracks: Sequence[PlaylistTrack]) -> UserPlaylist:
    """A new playlist (`/playlist save`, or the first `/playlist add`). Refuses an existing name
    (nothing is overwritten), a 26th playlist, or more than TRACKS_MAX tracks."""
    if len(tracks) > TRACKS_MAX:
        raise PlaylistError("playlist.too_many_tracks", limit=TRACKS_MAX)
    if await _count(user_id) >= PLAYLISTS_MAX:
        raise PlaylistError("playlist.too_many_playlists", limit=PLAYLISTS_MAX)
    now = utcnow()
    playlist = UserPlaylist(
        user_id=user_id,
        name=name.strip(),
        name_key=name_key(name),
        tracks=list(tracks),
        created_at=now,
        updated_at=now,
    )
    try:
        await UserPlaylist.get_pymongo_collection().insert_one(
            playlist.model_dump(exclude={"id", "revision_id"})
        )
    except DuplicateKeyError:
        raise PlaylistError("playlist.exists", name=name.strip()) from None
    return playlist


async def append_tracks(user_id: int, name: str, tracks: Sequence[PlaylistTrack]) -> int:
    """Add tracks at the end; refused (nothing added) when the playlist would pass TRACKS_MAX.
    Returns the new length."""
    if len(tracks) > TRACKS_MAX:
        raise PlaylistError("playlist.too_many_tracks", limit=TRACKS_MAX)
    collection = UserPlaylist.get_pymongo_collection()
    documents = [track.model_dump() for track in tracks]
    result = await collection.find_one_and_update(
        {
            "user_id": user_id,
            "name_key": name_key(name),
            f"tracks.{TRACKS_MAX - len(documents)}": {"$exists": False},  # room for all of them
        },
        {"$push": {"tracks": {"$each": documents}}, "$set": {"updated_at": utcnow()}},
        projection={"tracks.encoded": 1},
        return_document=ReturnDocument.AFTER,
    )
    if result is None:
        if await get_playlist(user_id, name) is None:
            raise PlaylistError("playlist.not_found", name=name.strip())
        raise PlaylistError("playlist.too_many_tracks", limit=TRACKS_MAX)
    return len(result["tracks"])


async def remove_track(user_id: int, name: str, index: int) -> PlaylistTrack:
    """Remove the track at 0-based `index`; returns it."""
    playlist = await get_playlist(user_id, name)
    if playlist is None:
        raise PlaylistError("playlist.not_found", name=name.strip())
    if not 0 <= index < len(playlist.tracks):
        raise PlaylistError("playlist.no_such_track", position=index + 1, count=len(playlist.tracks))
    removed = playlist.tracks[index]
    # Matched on the track still being the one shown, so a concurrent edit never removes another.
    result = await UserPlaylist.get_pymongo_collection().update_one(
        {"_id": playlist.id, f"tracks.{index}.encoded": removed.encoded},
        [
            {
                "$set": {
                    "tracks": {
                        "$concatArrays": [
                            {"$slice": ["$tracks", index]},
                            {"$slice": ["$tracks", index + 1, TRACKS_MAX]},
                        ]
                    },
                    "updated_at": utcnow(),
                }
            }
        ],
    )
    if result.matched_count == 0:
        raise PlaylistError("playlist.changed")
    return removed


async def delete_playlist(user_id: int, name: str) -> bool:
    result = await UserPlaylist.get_pymongo_collection().delete_one(
        {"user_id": user_id, "name_key": name_key(name)}
    )
    return result.deleted_count > 0
