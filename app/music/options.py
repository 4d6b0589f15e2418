"""Every slash-command option checked on our side. No Discord here.

Discord's client enforces the ranges, lengths and choices a command declares, but Discord's API
delivers whatever another client sends: `/volume level=1000`, a 2000-character query, a loop mode
that is not one of the choices, a string where an integer was declared. discord.py passes such
values through unchanged, so each command calls one of these first. A refused value raises
`MusicError`, which the command tree answers ephemerally; the message never repeats the value.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from app.i18n import Msg
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
    "check_range",
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
RANGE_MAX = 21  # /remove, /move positions: "10000-10000" and spaces
_RANGE = re.compile(r"^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$")


def _whole_number(value: object, low: int, high: int, what: str) -> int:
    # bool is an int in Python, never in Discord's payloads
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MusicError("option.whole_number", what=Msg(f"what.{what}"), low=low, high=high)
    return value


def _text(value: object, high: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MusicError("option.empty", what=Msg(f"what.{what}"))
    if len(value) > high:
        raise MusicError("option.too_long", what=Msg(f"what.{what}"), limit=high)
    return value.strip()


def check_volume(level: object) -> int:
    return _whole_number(level, VOLUME_MIN, VOLUME_MAX, "volume")


def check_count(count: object, *, maximum: int = SKIP_MAX) -> int:
    return _whole_number(count, 1, maximum, "count")


def check_position(position: object) -> int:
    """A 1-based queue position (whether the queue is that long is the command's business)."""
    return _whole_number(position, 1, POSITION_MAX, "position")


def check_query(text: object, *, limit: int = QUERY_MAX) -> str:
    return _text(text, limit, "search")


def check_time(text: object) -> str:
    return _text(text, TIME_MAX, "time")


def check_text(text: object, *, what: str, limit: int = TEXT_MAX) -> str:
    """`what` names a `what.*` message (the option as the user knows it)."""
    return _text(text, limit, what)


def check_choice(value: object, choices: Collection[str], *, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise MusicError("option.choice", what=Msg(f"what.{what}"), choices=", ".join(choices))
    return value


def check_pick(value: object, count: int) -> int:
    """The 0-based index a select menu's value names (our values are "0".."count-1")."""
    if not isinstance(value, str) or not value.isdigit() or int(value) >= count:
        raise MusicError("option.not_a_result")
    return int(value)


def check_range(text: object) -> tuple[int, int]:
    """`3` or `3-7` → the 1-based positions (first, last), first <= last, each 1-POSITION_MAX."""
    if not isinstance(text, str) or len(text) > RANGE_MAX:
        raise MusicError("option.range")
    match = _RANGE.match(text)
    if match is None:
        raise MusicError("option.range")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not 1 <= first <= last <= POSITION_MAX:
        raise MusicError("option.range")
    return first, last
