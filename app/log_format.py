"""`LOG_FORMAT=json`: one JSON object per line, for Loki, Elasticsearch or any JSON pipeline.

Every line has `time` (UTC, ISO 8601), `level`, `logger` and `message`, then `bot_id`,
`guild_id`, `worker` and `command` where known (`app.log_context`), `exception` with the
traceback, and any `extra=` fields. Ids are strings (snowflakes do not fit a JSON number
everywhere). Every string of the object, whatever field it came from, is redacted like a text
line (`app.logs.redact`): the record factory already redacted the message and the traceback,
but `extra=` fields and exceptions formatted again here pass this one check too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from app import log_context
from app.logs import redact

__all__ = ("JsonLogFormatter",)

_ID_FIELDS = ("bot_id", "guild_id")
# LogRecord's own attributes: never copied as extra fields.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonLogFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__()

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        log_data.update(log_context.current())
        extra = {key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES}
        log_data.update(extra)  # an explicit `extra=` wins over the context
        if "exc_info" in message_dict:
            log_data["exception"] = message_dict["exc_info"]
        if "stack_info" in message_dict:
            log_data["stack"] = message_dict["stack_info"]

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in _ID_FIELDS:
            if isinstance(log_data.get(key), int):
                log_data[key] = str(log_data[key])
        return {redact(str(key)): _redacted(value) for key, value in log_data.items()}


def _redacted(value: Any) -> Any:
    """Strings redacted; containers walked; anything else JSON cannot carry becomes its str()."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(item) for item in value]
    return redact(str(value))
