"""Logging setup, and the guarantee that no bot token reaches a log line.

Redaction happens in the log record factory, so it covers every record of the process,
whichever handler (uvicorn's, pytest's, a user's) later formats it, exceptions included.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from app.open_files import out_of_files, out_of_files_reason
from app.tokens import FERNET_CIPHERTEXT, SECRET_IN_TEXT

__all__ = (
    "REASON_MAX",
    "GatewayLogScope",
    "configure_logging",
    "describe_connection_error",
    "gateway_scope",
    "install_reconnect_log_filter",
    "install_redaction",
    "public_reason",
    "redact",
)


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
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        from app.log_format import JsonLogFormatter  # it builds on redact(), defined here

        return JsonLogFormatter()
    return logging.Formatter(TEXT_FORMAT)


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


def configure_logging(
    level: str = "INFO", *, pymongo_level: str | None = None, log_format: str = "text"
) -> None:
    """Log to stderr, one line per record: text, or JSON objects (`app.log_format`)."""
    install_redaction()
    install_reconnect_log_filter()
    root = logging.getLogger()
    root.setLevel(level)
    if not any(getattr(h, "_chorus", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_formatter_for(log_format))
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


# -- discord.py's reconnect tracebacks ------------------------------------------------------------


def describe_connection_error(exc: BaseException) -> str:
    """One line for a failed gateway connection: what failed, where, and why."""
    if out_of_files(exc):
        return out_of_files_reason()
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        url = exc.request_info.real_url.with_query(None)
        return f"gateway handshake failed: HTTP {exc.status} at {url}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"gateway unreachable: cannot connect to {exc.host}:{exc.port} ({reason})"
    if isinstance(exc, discord.ConnectionClosed):
        reason = f": {exc.reason}" if exc.reason else ""
        return f"the gateway closed the connection (close code {exc.code}{reason})"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "the gateway did not answer in time"
    if isinstance(exc, aiohttp.ClientError | OSError):
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
        return f"network error: {detail}"
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


@dataclass(frozen=True, slots=True)
class GatewayLogScope:
    """Which bot the discord.py records of the current task are about. A bot's supervisor sets
    it in its own task; `has_session` says whether its client ever had a gateway session."""

    label: str
    has_session: Callable[[], bool]


gateway_scope: ContextVar[GatewayLogScope | None] = ContextVar("chorus_gateway_scope", default=None)

_RECONNECT_PREFIX = "Attempting a reconnect in "
_reconnect_tracebacks = logging.getLogger("discord.client.reconnects")


class _ReconnectLogFilter(logging.Filter):
    """discord.py logs each failed reconnect with `_log.exception("Attempting a reconnect in
    %.2fs")`: a ~60-line traceback per bot per attempt (megabytes a minute when a gateway is
    down for a fleet). Each becomes one WARNING line naming the bot, the reason and the delay;
    the traceback goes to DEBUG. Before the first session discord.py cannot reconnect (it gives
    up after that sleep): the bot's supervisor reports that attempt, with its own delay."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(_RECONNECT_PREFIX):
            return True
        delay = message.removeprefix(_RECONNECT_PREFIX).strip()
        scope = gateway_scope.get()
        label = scope.label if scope is not None else "A bot"
        exc = record.exc_info[1] if record.exc_info else None
        reason = describe_connection_error(exc) if exc is not None else "unknown error"
        if record.exc_info:
            _reconnect_tracebacks.debug("%s: %s", label, reason, exc_info=record.exc_info)
        if scope is not None and not scope.has_session():
            return False
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.msg = f"{label}: gateway connection failed ({reason}); discord.py reconnects in {delay}"
        record.args = None
        record.exc_info, record.exc_text = None, None
        return True


def install_reconnect_log_filter() -> None:
    """Collapse discord.py's reconnect tracebacks (see `_ReconnectLogFilter`). Idempotent."""
    logger = logging.getLogger("discord.client")
    if not any(isinstance(f, _ReconnectLogFilter) for f in logger.filters):
        logger.addFilter(_ReconnectLogFilter())
