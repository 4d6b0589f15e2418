"""Pure helpers for music commands: time parsing and display. No Discord here."""

from __future__ import annotations

import re
from typing import Protocol

_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})$")


class InvalidTime(ValueError):
    pass


def parse_time(text: str) -> int:
    """`90`, `1:30`, `1:02:03` → milliseconds."""
    value = text.strip()
    if value.isdigit():
        return int(value) * 1000
    match = _CLOCK.match(value)
    if match is None:
        raise InvalidTime(f"`{text[:20]}` is not a time: use seconds (`90`), `m:ss` (`1:30`) or `h:mm:ss`.")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if seconds >= 60 or (match.group(1) is not None and minutes >= 60):
        raise InvalidTime(f"`{text[:20]}` is not a valid time.")
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def format_duration(milliseconds: int | float, *, is_stream: bool = False) -> str:
    if is_stream:
        return "LIVE"
    total = max(0, int(milliseconds // 1000))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class _HasLength(Protocol):
    @property
    def length(self) -> int: ...
    @property
    def is_stream(self) -> bool: ...


def track_length(track: _HasLength) -> str:
    return format_duration(track.length, is_stream=track.is_stream)


def progress_bar(position: int | float, length: int | float, *, width: int = 20) -> str:
    """`▬▬▬🔘▬▬▬▬` with the knob at the played fraction."""
    fraction = 0.0 if length <= 0 else min(1.0, max(0.0, position / length))
    knob = min(width - 1, int(fraction * width))
    return "▬" * knob + "🔘" + "▬" * (width - knob - 1)


def page_count(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))
