"""Every slash-command option checked on our side. No Discord here.

Discord's client enforces the ranges, lengths and choices a command declares, but Discord's API
delivers whatever another client sends: `/volume level=1000`, a 2000-character query, a loop mode
that is not one of the choices, a string where an integer was declared. discord.py passes such
values through unchanged, so each command calls one of these first. A refused value raises
`MusicError`, which the command tree answers ephemerally; the message never repeats the value.
"""

from __future__ import annotations

from collections.abc import Collection

from app.music.errors import MusicError

__all__ = (
    "POSITION_MAX",
    "QUERY_MAX",
    "SEARCH_QUERY_MAX",
    "SKIP_MAX",
    "TEXT_MAX",
    "TIME_MAX",
    "VOLUME_MAX",
    "VOLUME_MIN",
    "check_choice",
    "check_count",
    "check_pick",
    "check_position",
    "check_query",
    "check_text",
    "check_time",
    "check_volume",
)

VOLUME_MIN, VOLUME_MAX = 0, 150
QUERY_MAX = 500  # /play
SEARCH_QUERY_MAX = 200  # /search
SKIP_MAX = 100
POSITION_MAX = 10_000  # /remove, /move
TIME_MAX = 12  # /seek: "123:59:59" and room for spaces
TEXT_MAX = 100  # free text such as /clone_stop's bot


def _whole_number(value: object, low: int, high: int, what: str) -> int:
    # bool is an int in Python, never in Discord's payloads
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MusicError(f"{what} must be a whole number from {low} to {high}.")
    return value


def _text(value: object, high: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MusicError(f"{what} must not be empty.")
    if len(value) > high:
        raise MusicError(f"{what} is too long: at most {high} characters.")
    return value.strip()


def check_volume(level: object) -> int:
    return _whole_number(level, VOLUME_MIN, VOLUME_MAX, "The volume")


def check_count(count: object, *, maximum: int = SKIP_MAX) -> int:
    return _whole_number(count, 1, maximum, "The count")


def check_position(position: object) -> int:
    """A 1-based queue position (whether the queue is that long is the command's business)."""
    return _whole_number(position, 1, POSITION_MAX, "A queue position")


def check_query(text: object, *, limit: int = QUERY_MAX) -> str:
    return _text(text, limit, "The search")


def check_time(text: object) -> str:
    return _text(text, TIME_MAX, "The time")


def check_text(text: object, *, what: str, limit: int = TEXT_MAX) -> str:
    return _text(text, limit, what)


def check_choice(value: object, choices: Collection[str], *, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise MusicError(f"{what} must be one of: {', '.join(choices)}.")
    return value


def check_pick(value: object, count: int) -> int:
    """The 0-based index a select menu's value names (our values are "0".."count-1")."""
    if not isinstance(value, str) or not value.isdigit() or int(value) >= count:
        raise MusicError("That is not one of the results.")
    return int(value)
