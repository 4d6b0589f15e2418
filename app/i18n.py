"""Translations: every user-facing string lives in a gettext catalogue, not in code.

`app/locales/<lang>.po` (English and Thai) are read with Babel when first needed: the source
format is the only format, so a fresh checkout needs no compile step and nothing compiled can
drift from its source. Message ids are keys (`error.not_in_voice`); the English catalogue
holds the English text. Placeholders are `str.format` names (`{title}`); a `Msg` given as a
placeholder value is rendered in the same language.

Command names, descriptions, option names and choices are translated for Discord by
`CommandTranslator` (an `app_commands.Translator`): `CommandTree.sync` and deploy-commands send
them as `name_localizations` / `description_localizations`. Their keys are derived from the
command tree (`cmd.settings.language.desc`, `cmd.play.opt.query.name`, `choice.off`).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from babel.messages.pofile import read_po
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

__all__ = (
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "CommandTranslator",
    "Msg",
    "Tr",
    "catalogue",
    "command_key",
    "language_of_locale",
    "placeholders",
    "text",
)

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"
# Our languages and the Discord locales each one answers (every other locale gets English).
LANGUAGES: Mapping[str, tuple[discord.Locale, ...]] = {
    "en": (discord.Locale.american_english, discord.Locale.british_english),
    "th": (discord.Locale.thai,),
}


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """The messages of one language: key -> text (empty translations are left out)."""
    path = LOCALES_DIR / f"{language}.po"
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=language)
    return {
        str(message.id): str(message.string)
        for message in parsed
        if message.id and isinstance(message.string, str) and message.string
    }


def language_of_locale(locale: discord.Locale | str | None) -> str:
    """Our language for a Discord locale (`th` → Thai; anything else → English)."""
    return _language_of_value(locale.value if isinstance(locale, discord.Locale) else (locale or ""))


@functools.lru_cache(maxsize=128)  # Discord has a few dozen locales; asked for every command
def _language_of_value(value: str) -> str:
    for language, locales in LANGUAGES.items():
        if any(value == known.value or value.split("-")[0] == known.value for known in locales):
            return language
    return DEFAULT_LANGUAGE


class Msg:
    """A message to render later, in the reader's language: `Msg("done.skipped", title=...)`."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key = key
        self.params: Mapping[str, Any] = params

    def __repr__(self) -> str:
        return f"Msg({self.key!r}, {dict(self.params)!r})"

    def render(self, language: str) -> str:
        return text(language, self.key, **self.params)


def text(language: str, key: str, /, **params: Any) -> str:
    """The message `key` in `language` (English if that language lacks it), formatted."""
    template = catalogue(language).get(key) or catalogue(DEFAULT_LANGUAGE).get(key)
    if template is None:
        return key  # a test fails on any key missing from a catalogue; never crash a user's answer
    if not params:
        return template
    values = {
        name: value.render(language) if isinstance(value, Msg) else value for name, value in params.items()
    }
    return template.format_map(values)


def placeholders(template: str) -> set[str]:
    """The `{name}`s of a message (for the catalogue tests)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True, slots=True)
class Tr:
    """`t("key", **params)` in one language."""

    language: str

    def __call__(self, key: str, /, **params: Any) -> str:
        return text(self.language, key, **params)


# -- command localisations ---------------------------------------------------------------------


def _path(qualified_name: str) -> str:
    return qualified_name.replace(" ", ".")


def command_key(context: app_commands.TranslationContextTypes) -> str | None:
    """The catalogue key of a command string discord.py asks to translate (None: not ours)."""
    where, data = context.location, context.data
    if isinstance(data, app_commands.Command | app_commands.Group | app_commands.ContextMenu):
        part = "name" if where in (Where.command_name, Where.group_name) else "desc"
        return f"cmd.{_path(data.qualified_name)}.{part}"
    if isinstance(data, app_commands.Parameter):
        part = "name" if where is Where.parameter_name else "desc"
        return f"cmd.{_path(data.command.qualified_name)}.opt.{data.display_name}.{part}"
    if isinstance(data, app_commands.Choice):
        return f"choice.{data.value}"
    return None


class CommandTranslator(app_commands.Translator):
    """Discord localisations of every command from the catalogues. English is the commands'
    own text (Discord's default), so only the other languages are sent."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = next((lang for lang, locales in LANGUAGES.items() if locale in locales), None)
        if language is None or language == DEFAULT_LANGUAGE:
            return None
        key = command_key(context)
        if key is None:
            return None
        return catalogue(language).get(key)
