"""The option checks every command runs first, without Discord."""

from __future__ import annotations

import pytest

from app.music.errors import MusicError
from app.music.options import (
    POSITION_MAX,
    QUERY_MAX,
    check_choice,
    check_count,
    check_pick,
    check_position,
    check_query,
    check_text,
    check_time,
    check_volume,
)


@pytest.mark.parametrize("level", [0, 1, 100, 150])
def test_volume_in_range(level: int) -> None:
    assert check_volume(level) == level


@pytest.mark.parametrize("level", [-1, 151, 1000, 2**53, True, 50.5, "50", None])
def test_volume_out_of_range_or_not_a_whole_number(level: object) -> None:
    with pytest.raises(MusicError) as info:
        check_volume(level)
    assert str(info.value) == "The volume must be a whole number from 0 to 150."  # never the value


def test_positions_and_counts() -> None:
    assert check_position(1) == 1 and check_position(POSITION_MAX) == POSITION_MAX
    for bad in (0, -3, POSITION_MAX + 1, "2"):
        with pytest.raises(MusicError, match="queue position"):
            check_position(bad)
    assert check_count(100) == 100
    for bad in (0, 101, -1):
        with pytest.raises(MusicError, match="from 1 to 100"):
            check_count(bad)


def test_queries_are_stripped_and_bounded() -> None:
    assert check_query("  song  ") == "song"
    assert check_query("x" * QUERY_MAX) == "x" * QUERY_MAX
    with pytest.raises(MusicError, match="at most 500") as info:
        check_query("y" * 2000)
    assert "yyy" not in str(info.value)
    for empty in ("", "   ", None, 42):
        with pytest.raises(MusicError, match="must not be empty"):
            check_query(empty)
    with pytest.raises(MusicError, match="at most 200"):
        check_query("z" * 201, limit=200)
    with pytest.raises(MusicError, match="at most 12"):
        check_time("1" * 13)
    with pytest.raises(MusicError, match="The bot"):
        check_text("", what="The bot")


def test_choices_and_picks() -> None:
    assert check_choice("track", ("off", "track", "queue"), what="The loop mode") == "track"
    with pytest.raises(MusicError, match="off, track, queue"):
        check_choice("forever", ("off", "track", "queue"), what="The loop mode")
    with pytest.raises(MusicError):
        check_choice(1, ("on", "off"), what="The state")
    assert check_pick("4", 5) == 4
    for bad in ("5", "-1", "x", "", 3):
        with pytest.raises(MusicError, match="not one of the results"):
            check_pick(bad, 5)
