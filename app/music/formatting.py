"""Pure helpers for music commands: time parsing and display. No Discord here."""

from __future__ import annotations

import re
from typing import Protocol

from app.music.errors import MusicError

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})$")


class InvalidTime(MusicError):
    """A /seek time that is not one (its message names the accepted forms)."""


def parse_time(text: str) -> int:
    """`90`, `1:30`, `1:02:03` → milliseconds."""
    value = text.strip()
    if value.isdigit():
        return int(value) * 1000
    match = _CLOCK.match(value)
    if match is None:
        raise InvalidTime("time.not_a_time", text=text[:20])
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if seconds >= 60 or (match.group(1) is not None and minutes >= 60):
        raise InvalidTime("time.invalid", text=text[:20])
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def format_duration(milliseconds: int | float, *, is_stream: bool = False, live: str = "LIVE") -> str:
    """`1:02:03`, `4:05`; `live` (the reader's word for it) for a stream."""
    if is_stream:
        return live
    total = max(0, int(milliseconds // 1000))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _HasLength(Protocol):
    @property
    def length(self) -> int: ...
    @property
    def is_stream(self) -> bool: ...


def track_length(track: _HasLength, *, live: str = "LIVE") -> str:
    return format_duration(track.length, is_stream=track.is_stream, live=live)


def progress_bar(position: int | float, length: int | float, *, width: int = 20) -> str:
    """`▬▬▬🔘▬▬▬▬` with the knob at the played fraction."""
    fraction = 0.0 if length <= 0 else min(1.0, max(0.0, position / length))
    knob = min(width - 1, int(fraction * width))
    return "▬" * knob + "🔘" + "▬" * (width - knob - 1)


def page_count(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))
