"""Logging setup, and the guarantee that no bot token reaches a log line.

Redaction happens in the log record factory, so it covers every record of the process,
whichever handler (uvicorn's, pytest's, a user's) later formats it, exceptions included.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

__all__ = ("configure_logging", "install_redaction", "redact")

_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9_-]{17,40}\.[A-Za-z0-9_-]{4,10}\.[A-Za-z0-9_-]{20,}")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bot|bearer)\s+[^\s'\",}]+")
_URL_PASSWORD = re.compile(r"(?i)(mongodb(?:\+srv)?://[^:/@\s]+:)[^@\s]+@")

REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    """Mask anything token-shaped, bearer/bot authorization values and database passwords."""
    text = _TOKEN_SHAPED.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)} {REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


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


def configure_logging(level: str = "INFO") -> None:
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
