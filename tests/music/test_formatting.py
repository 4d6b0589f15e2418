from __future__ import annotations

import asyncio
from typing import Any

import pytest
import wavelink

from app.bots.commands import command_payloads
from app.music.config import InvalidNodeSpec, parse_lavalink_nodes
from app.music.filters import PRESETS, preset_filters
from app.music.formatting import InvalidTime, format_duration, page_count, parse_time, progress_bar


@pytest.mark.parametrize(
    ("text", "ms"), [("90", 90_000), ("1:30", 90_000), ("01:02:03", 3_723_000), (" 0:05 ", 5_000), ("0", 0)]
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "1:60", "1:61:00", "-5", "1.5", "1:2:3:4"])
def test_parse_time_rejects_nonsense_with_a_hint(text: str) -> None:
    with pytest.raises(InvalidTime, match="time"):
        parse_time(text)


def test_format_duration_and_progress() -> None:
    assert format_duration(5_000) == "0:05"
    assert format_duration(3_723_000) == "1:02:03"
    assert format_duration(0, is_stream=True) == "LIVE"
    bar = progress_bar(50, 100, width=10)
    assert len(bar) == 10 and bar.index("🔘") == 5
    assert progress_bar(0, 0, width=4).startswith("🔘")
    assert progress_bar(200, 100, width=4).endswith("🔘")
    assert page_count(0, 10) == 1 and page_count(21, 10) == 3


def test_lavalink_nodes_parse_and_keep_passwords_out_of_errors() -> None:
    specs = parse_lavalink_nodes("main=http://lavalink:2333=pa=ss, backup=https://b.example/=x")
    assert [(s.name, s.uri, s.password) for s in specs] == [
        ("main", "http://lavalink:2333", "pa=ss"),
        ("backup", "https://b.example", "x"),
    ]
    assert "pa=ss" not in repr(specs[0])
    assert parse_lavalink_nodes(None) == [] and parse_lavalink_nodes(" ") == []
    for bad in (
        "main=http://x",
        "main=ftp://x=secret-pw",
        "a b=http://x=secret-pw",
        "m=http://x=p1,m=http://y=p2",
    ):
        with pytest.raises(InvalidNodeSpec) as info:
            parse_lavalink_nodes(bad)
        assert "secret-pw" not in str(info.value)


def test_filter_presets_produce_lavalink_payloads() -> None:
    assert set(PRESETS) == {"bassboost", "nightcore", "vaporwave", "karaoke", "8d", "reset"}
    payloads: dict[str, dict[str, Any]] = {name: dict(preset_filters(name)()) for name in PRESETS}
    assert payloads["nightcore"]["timescale"] == {"speed": 1.2, "pitch": 1.2, "rate": 1.0}
    assert payloads["8d"]["rotation"] == {"rotationHz": 0.2}
    assert payloads["bassboost"]["equalizer"][0] == {"band": 0, "gain": 0.3}
    reset = payloads["reset"]
    assert isinstance(reset, dict) and not reset.get("timescale")
    assert isinstance(preset_filters("karaoke"), wavelink.Filters)


def test_every_command_is_described_and_typed() -> None:
    payloads = asyncio.run(command_payloads())
    names = {p["name"] for p in payloads}
    expected = {
        "play", "search", "pause", "resume", "skip", "stop", "leave", "queue", "nowplaying", "volume", "seek",
        "loop", "shuffle", "remove", "move", "clear", "autoplay", "filter", "247", "settings",
    }  # fmt: skip
    assert expected <= names
    for payload in payloads:
        assert payload["description"], payload["name"]
        for option in payload.get("options", []):
            assert option["description"], f"{payload['name']}.{option['name']}"
    play = next(p for p in payloads if p["name"] == "play")
    assert play["options"][0]["autocomplete"] is True
    volume = next(p for p in payloads if p["name"] == "volume")
    assert (volume["options"][0]["min_value"], volume["options"][0]["max_value"]) == (0, 150)
