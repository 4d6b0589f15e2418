"""The catalogues: complete in every language, placeholders that agree, every key the code uses,
and Discord localisations for every command (what deploy-commands sends)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from app.bots.commands import command_payloads
from app.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    LOCALES_DIR,
    catalogue,
    language_of_locale,
    placeholders,
    text,
)

ROOT = Path(__file__).resolve().parent.parent
# Discord's rule for command and option names (and their localisations).
_NAME = re.compile(r"^[-_\w\u0E00-\u0E7F]{1,32}$")
# Keys written literally in code: t("key"), Msg("key"), MusicError("key"), text(lang, "key") ...
_LITERAL = re.compile(
    r"""(?:\bt|\btr\(interaction\)|\bMsg|Error|NotAllowed|InvalidTime|__init__|\btext\(\w+,)\(\s*"([a-z_]+\.[a-z0-9_.-]+)\""""
)
# Keys built from a prefix: f"action.{...}" and the like; their suffixes are listed here.
_FAMILIES: dict[str, set[str]] = {
    "action": {
        "pause_others", "resume_others", "stop", "leave", "seek_others", "volume", "shuffle",
        "remove_others", "move", "clear", "loop", "autoplay", "filter", "previous", "skipto",
        "replay_others",
    },
    "what": {
        "volume", "count", "position", "positions", "search", "time", "loop", "state", "filter",
        "language", "playlist_name", "bot",
    },
    "loop": {"off", "track", "queue"},
    "state": {"on", "off"},
    "language": {"auto", "en", "th"},
    "bots": {"playing", "paused", "idle"},
    "error": {"missing_voice_connect", "missing_voice_speak"},
    "controller": {"previous", "pause", "skip", "stop", "loop", "shuffle", "queue", "resume"},
}  # fmt: skip


def _code_keys() -> set[str]:
    keys: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        keys.update(_LITERAL.findall(path.read_text(encoding="utf-8")))
    for family, suffixes in _FAMILIES.items():
        keys.update(f"{family}.{suffix}" for suffix in suffixes)
    return keys


def catalogue_problems(catalogues: dict[str, dict[str, str]]) -> list[str]:
    """Keys missing (or extra) in a language, empty messages, placeholders unlike English's."""
    english = catalogues[DEFAULT_LANGUAGE]
    problems: list[str] = []
    for language, messages in catalogues.items():
        problems += [f"{language}: {key} missing" for key in sorted(set(english) - set(messages))]
        problems += [f"{language}: {key} not in English" for key in sorted(set(messages) - set(english))]
        for key, template in messages.items():
            if not template.strip():
                problems.append(f"{language}: {key} is empty")
            elif key in english and placeholders(template) != placeholders(english[key]):
                problems.append(f"{language}: {key} placeholders differ")
    return problems


def test_every_language_has_every_key_with_the_same_placeholders() -> None:
    catalogues = {language: dict(catalogue(language)) for language in LANGUAGES}
    assert len(catalogues[DEFAULT_LANGUAGE]) > 200
    assert catalogue_problems(catalogues) == []


def test_every_key_the_code_uses_is_in_the_catalogues() -> None:
    used = _code_keys()
    assert "error.not_in_voice" in used and "action.stop" in used
    missing = used - set(catalogue(DEFAULT_LANGUAGE))
    assert not missing, f"keys used in code but missing from {LOCALES_DIR}: {sorted(missing)}"


def test_the_check_catches_a_missing_key_and_a_broken_placeholder() -> None:
    catalogues = {language: dict(catalogue(language)) for language in LANGUAGES}
    del catalogues["th"]["error.not_in_voice"]
    catalogues["th"]["error.no_results"] = "ไม่พบผลลัพธ์สำหรับ {qurey}"
    assert catalogue_problems(catalogues) == [
        "th: error.not_in_voice missing",
        "th: error.no_results placeholders differ",
    ]


def test_rendering_and_locales() -> None:
    assert text("th", "error.no_track_at", position=9, count=2) == "ไม่มีเพลงที่ลำดับ 9 (ในคิวมี 2 เพลง)"
    assert text("en", "error.no_track_at", position=9, count=2).startswith("There is no track at position 9")
    assert language_of_locale("th") == "th"
    assert language_of_locale("en-GB") == "en"
    assert language_of_locale("ja") == "en"  # languages we do not ship answer in English
    assert language_of_locale(None) == "en"


def _localisable(payload: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, payload)]
    for option in payload.get("options") or []:
        found += _localisable(option, f"{path} {option['name']}")
    return found


@pytest.fixture(scope="module")
def payloads() -> list[dict[str, Any]]:
    return asyncio.run(command_payloads())


def test_deploy_payload_carries_thai_localisations_for_everything(payloads: list[dict[str, Any]]) -> None:
    play = next(p for p in payloads if p["name"] == "play")
    assert play["name_localizations"]["th"] == "เล่น"
    assert play["description_localizations"]["th"]
    assert "en-US" not in play["name_localizations"]  # English is the default text
    for command in payloads:
        for path, item in _localisable(command, command["name"]):
            names = item.get("name_localizations") or {}
            assert "th" in names, f"/{path} has no Thai name"
            assert _NAME.match(names["th"]) and names["th"] == names["th"].lower(), names["th"]
            descriptions = item.get("description_localizations") or {}
            assert 1 <= len(descriptions.get("th", "")) <= 100, f"/{path} Thai description"
            for choice in item.get("choices") or []:
                assert 1 <= len((choice.get("name_localizations") or {}).get("th", "")) <= 100, choice
    top = [command["name_localizations"]["th"] for command in payloads]
    assert len(top) == len(set(top)), "two commands share a Thai name"


def test_english_catalogue_holds_the_commands_own_text(payloads: list[dict[str, Any]]) -> None:
    english = catalogue("en")

    def walk(prefix: str, item: dict[str, Any]) -> None:
        assert english[f"cmd.{prefix}.name"] == item["name"]
        assert english[f"cmd.{prefix}.desc"] == item["description"]
        for option in item.get("options") or []:
            if option["type"] in (1, 2):
                walk(f"{prefix}.{option['name']}", option)
            else:
                assert english[f"cmd.{prefix}.opt.{option['name']}.desc"] == option["description"]

    for command in payloads:
        walk(command["name"], command)


def test_commands_doc_lists_every_command_in_both_languages(payloads: list[dict[str, Any]]) -> None:
    doc = (ROOT / "docs" / "COMMANDS.md").read_text(encoding="utf-8")
    for command in payloads:
        thai = command["name_localizations"]["th"]
        assert f"`/{command['name']}" in doc, command["name"]
        assert f"`/{thai}" in doc, thai
