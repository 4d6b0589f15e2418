"""Docs follow the settings: every setting is in `.env.example` with a comment."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.add(str(choices[0]) if choices else name.upper())
    return names


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in _env_names():
        index = next((i for i, line in enumerate(lines) if line.startswith(f"{name}=")), None)
        assert index is not None, f"{name} is missing from .env.example"
        preceding = lines[index - 1].strip()
        assert preceding.startswith("#") or lines[index - 2].strip().startswith("#"), f"{name} has no comment"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in _env_names():
        assert f"`{name}`" in readme, f"{name} is not in the README's configuration table"
