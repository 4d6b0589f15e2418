"""Settings for a `chorus` command: loaded once, and a bad one is one readable line, never a traceback.

Every command (the service and the operator commands) starts with `load_command_settings()`.
A setting that does not validate prints `chorus: SETTING: reason ('value')`, one line per bad
setting, and the command exits 2 ("could not run"). The value of a secret setting (a `SecretStr`:
MONGODB_URL, TOKEN_ENCRYPTION_KEYS, DISCORD_TOKEN, ADMIN_API_TOKEN, LAVALINK_NODES) is never
printed, only its name and the reason.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from pydantic import SecretStr, ValidationError

from app.logs import configure_logging
from app.settings import Settings

__all__ = ("EXIT_UNUSABLE", "describe_settings_errors", "exit_unusable", "load_command_settings")

EXIT_UNUSABLE = 2

_PORT_FIELDS = {"http_port"}
_MAX_VALUE_CHARS = 60


def _env_name(field: str) -> str:
    info = Settings.model_fields.get(field)
    choices = getattr(info.validation_alias, "choices", None) if info is not None else None
    return str(choices[0]) if choices else field.upper()


def _is_secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    if info is None:
        return False
    annotation = info.annotation
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def _reason(field: str, error: Any) -> str:
    kind: str = error.get("type", "")
    ctx: dict[str, Any] = error.get("ctx") or {}
    port_errors = {"int_parsing", "int_from_float", "greater_than_equal", "less_than_equal"}
    if field in _PORT_FIELDS and kind in port_errors:
        return "not a valid port (a whole number from 0 to 65535)"
    simple = {
        "int_parsing": "not a whole number",
        "int_from_float": "not a whole number",
        "float_parsing": "not a number",
        "bool_parsing": "not true or false",
        "string_too_short": "must not be empty",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        bound = ctx.get(key)
        return f"must be {words} {bound:g}" if isinstance(bound, float) else f"must be {words} {bound}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    message = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "should be")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 4] + "...'"


def describe_settings_errors(exc: ValidationError) -> list[str]:
    """One `SETTING: reason ('value')` line per bad setting; no value for secret settings."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        if field and field.lower() in Settings.model_fields:
            field = field.lower()
        if not field:  # a check across settings: its message names them
            lines.append(_reason(field, error))
            continue
        line = f"{_env_name(field)}: {_reason(field, error)}"
        if not _is_secret(field) and "input" in error:
            line += f" ({_shown(error['input'])})"
        lines.append(line)
    return lines


def exit_unusable(lines: list[str]) -> NoReturn:
    """Print each line as `chorus: ...` on stderr and exit 2 (the command could not run)."""
    for line in lines:
        print(f"chorus: {line}", file=sys.stderr)
    raise SystemExit(EXIT_UNUSABLE)


def load_command_settings() -> Settings:
    """The settings and logging every `chorus` command runs with; exits 2 on a bad setting."""
    try:
        settings = Settings()
    except ValidationError as exc:
        exit_unusable(describe_settings_errors(exc))
    configure_logging(
        settings.log_level, pymongo_level=settings.log_level_pymongo, log_format=settings.log_format
    )
    return settings
