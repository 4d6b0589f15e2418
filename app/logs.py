"""Logging setup, and the guarantee that no bot token reaches a log line.

Redaction happens in the log record factory, so it covers every record of the process,
whichever handler (uvicorn's, pytest's, a user's) later formats it, exceptions included.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from app.tokens import FERNET_CIPHERTEXT, SECRET_IN_TEXT

__all__ = ("REASON_MAX", "configure_logging", "install_redaction", "public_reason", "redact")

_FINGERPRINT = re.compile(r"(?i)(token_fingerprint['\"]?\s*[:=]\s*['\"]?)[0-9a-f]{8,64}")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bot|bearer)\s+[^\s'\",}]+")
_URL_PASSWORD = re.compile(r"(?i)(mongodb(?:\+srv)?://[^:/@\s]+:)[^@\s]+@")

REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    """Mask anything token-shaped, stored ciphertexts and fingerprints, bearer/bot authorization
    values and database passwords."""
    text = SECRET_IN_TEXT.sub(REDACTED, text)
    text = FERNET_CIPHERTEXT.sub(REDACTED, text)
    text = _FINGERPRINT.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)} {REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


REASON_MAX = 200
# Terminal escape sequences whole, then any other control or direction-changing character.
_CONTROL = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+"
)


def public_reason(text: str, *, limit: int = REASON_MAX) -> str:
    """A reason fit to show outside the process (`lastError`, a DM, an API error): redacted, on
    one line without control or direction-changing characters, and at most `limit` characters.
    Upstream servers (Discord, Lavalink, a proxy) choose their error text; this bounds what of it
    we repeat."""
    text = " ".join(_CONTROL.sub(" ", redact(text)).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_formatter = logging.Formatter()


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a broken %-format: keep the raw parts, redacted
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters reuse exc_text when set, so the traceback is rendered once, redacted.
        record.exc_text = redact(_formatter.formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_redaction() -> None:
    """Wrap the process's log record factory so every record is redacted at creation. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_chorus_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    factory._chorus_redacting = True  # type: ignore[attr-defined]  # marker for idempotence
    logging.setLogRecordFactory(factory)


def configure_logging(level: str = "INFO", *, pymongo_level: str | None = None) -> None:
    install_redaction()
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_chorus", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler._chorus = True  # type: ignore[attr-defined]  # marks our handler for idempotence
        root.addHandler(handler)
    # discord.py's gateway chatter at INFO is one line per bot per event: keep it at WARNING
    # unless the operator asks for DEBUG.
    if level != "DEBUG":
        logging.getLogger("discord").setLevel(logging.WARNING)
        logging.getLogger("wavelink").setLevel(logging.WARNING)
    # PyMongo's DEBUG records quote every command and reply, stored ciphertexts and fingerprints
    # included: it stays at INFO unless LOG_LEVEL_PYMONGO asks for more.
    floor = max(logging.getLevelNamesMapping()[level], logging.INFO)
    logging.getLogger("pymongo").setLevel(pymongo_level or floor)
