"""Seed-file validation on its own: every rule, without a database or a subprocess."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from app.invite_urls import MUSIC_BOT_PERMISSIONS, invite_url
from app.ops.seed_file import SeedFileError, parse_seed_text, validate_entries
from app.tokens import token_fingerprint
from tests.fakes.discord import make_fake_token
from tests.ops.conftest import ROOT

CLIENT_ID = 1_234_567_890_123_456_789


def _problems(entries: list[Any]) -> list[str]:
    return [str(problem) for problem in validate_entries(entries)[1]]


def test_a_valid_entry_with_every_field() -> None:
    token = make_fake_token(CLIENT_ID)
    raw = {
        "_comment": "ignored",
        "name": "  Music 1 ",
        "token": token,
        "client_id": str(CLIENT_ID),
        "enabled": False,
        "owner_id": "42",
        "dev_guild_id": 7,
    }
    (entry,), problems = validate_entries([raw])
    assert problems == []
    assert (entry.index, entry.name, entry.client_id, entry.enabled) == (1, "Music 1", CLIENT_ID, False)
    assert (entry.owner_id, entry.dev_guild_id) == (42, 7)
    assert entry.fingerprint == token_fingerprint(token)
    assert entry.given == {"client_id", "enabled", "owner_id", "dev_guild_id"}
    assert token not in repr(entry)


def test_defaults_and_omitted_fields() -> None:
    (entry,), _ = validate_entries([{"name": "A", "token": make_fake_token(CLIENT_ID)}])
    assert entry.enabled is True and entry.owner_id is None and entry.given == frozenset()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"token": "x"}, "entry #1, field 'name': missing (required)"),
        ({"name": "", "token": "x"}, "field 'name': must not be empty"),
        ({"name": 5, "token": "x"}, "field 'name': must be a string"),
        ({"name": "n" * 81, "token": "x"}, "must be at most 80 characters (has 81)"),
        ({"name": "A"}, "entry #1 ('A'), field 'token': missing (required)"),
        ({"name": "A", "token": 12}, "field 'token': must be a string"),
        ({"name": "A", "token": "PASTE-HERE"}, "still the template's placeholder"),
        ({"name": "A", "token": "Bot abc.defgh.ijklmnopqrstuvwxyz0123"}, "remove the 'Bot ' prefix"),
        ({"name": "A", "token": "only-one-part"}, "field 'token': not a Discord bot token"),
        ({"name": "A", "token": "x" * 20 + ".abcdef." + "y" * 27}, "not base64 of a Discord id"),
        (
            {"name": "A", "token": make_fake_token(CLIENT_ID), "client_id": 5},
            f"is 5, but the token belongs to application {CLIENT_ID}",
        ),
        (
            {"name": "A", "token": make_fake_token(CLIENT_ID), "client_id": "abc"},
            "field 'client_id': must be the application id",
        ),
        (
            {"name": "A", "token": make_fake_token(CLIENT_ID), "enabled": "yes"},
            "field 'enabled': must be true or false",
        ),
        (
            {"name": "A", "token": make_fake_token(CLIENT_ID), "owner_id": -1},
            "field 'owner_id': must be a Discord id",
        ),
        ({"name": "A", "token": make_fake_token(CLIENT_ID), "dev_guild_id": True}, "field 'dev_guild_id'"),
        ({"name": "A", "token": make_fake_token(CLIENT_ID), "tokne": 1}, "field 'tokne': unknown field"),
        ("a string", "entry #1: must be an object"),
    ],
)
def test_each_rule_names_the_entry_and_the_field(raw: Any, expected: str) -> None:
    entries, problems = validate_entries([raw])
    assert any(expected in str(problem) for problem in problems), problems
    assert entries == []


def test_duplicates_within_the_file_are_found_even_next_to_other_problems() -> None:
    token = make_fake_token(CLIENT_ID)
    problems = _problems(
        [
            {"name": "First", "token": token},
            {"name": "Second", "token": token, "enabled": "no"},  # invalid, and a duplicate
            {"name": "Third", "token": make_fake_token(CLIENT_ID), "client_id": CLIENT_ID},
        ]
    )
    assert "entry #2 ('Second'), field 'token': the same token as entry #1 ('First')" in problems
    assert (
        f"entry #3 ('Third'), field 'client_id': application {CLIENT_ID} is already entry #1 ('First') "
        "(with another token)" in problems
    )
    assert [p.split(",")[0] for p in problems] == sorted(p.split(",")[0] for p in problems)


def test_file_shapes() -> None:
    token = make_fake_token(CLIENT_ID)
    assert parse_seed_text(json.dumps([{"name": "A", "token": token}])) == [{"name": "A", "token": token}]
    assert parse_seed_text(json.dumps({"_comment": "x", "bots": []})) == []
    assert _problems([]) == ["file: the file has no bot entries"]
    with pytest.raises(SeedFileError, match="unknown top-level key 'bot'"):
        parse_seed_text(json.dumps({"bot": []}))
    with pytest.raises(SeedFileError, match="expected a list of bot entries"):
        parse_seed_text("42")
    with pytest.raises(SeedFileError, match=r"invalid JSON at line 2, column 1"):
        parse_seed_text("[\n}")


def test_the_template_is_valid_json_with_placeholders_that_are_not_token_shaped() -> None:
    text = (ROOT / "seeds" / "bots.example.json").read_text()
    # The repository's commit hook rejects anything shaped like a real token.
    assert not re.search(r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,}", text)
    entries = parse_seed_text(text)
    problems = validate_entries(entries)[1]
    assert len(problems) == len(entries) and all("placeholder" in p.message for p in problems)


def test_invite_url_asks_for_exactly_what_a_music_bot_needs() -> None:
    assert (
        MUSIC_BOT_PERMISSIONS.value
        == (1 << 10) | (1 << 11) | (1 << 14) | (1 << 20) | (1 << 21) | (1 << 48)
        == 281474979875840
    )
    assert invite_url(42) == (
        "https://discord.com/oauth2/authorize?client_id=42&scope=bot+applications.commands&permissions=281474979875840"
    )


@pytest.mark.parametrize(
    "name",
    [
        "{token}",
        "M {token}",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk",
        "gAAAAABnQ2FiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6",
    ],
)
def test_a_name_that_is_or_contains_a_token_is_refused_without_repeating_it(name: str) -> None:
    token = make_fake_token(CLIENT_ID)
    name = name.format(token=token)
    entry, problems = validate_entries([{"name": name, "token": make_fake_token(CLIENT_ID + 1)}])
    assert entry == []
    assert [p.field for p in problems] == ["name"] and "looks like" in problems[0].message
    text = "; ".join(str(p) for p in problems)
    assert text.startswith("entry #1, field 'name'")  # numbered, never named
    assert name not in text and token not in text


def test_a_token_as_an_unknown_key_is_not_repeated() -> None:
    token = make_fake_token(CLIENT_ID)
    _, problems = validate_entries([{"name": "A", "token": make_fake_token(CLIENT_ID + 1), token: 1}])
    (problem,) = problems
    assert token not in str(problem) and "looks like a token" in str(problem)
