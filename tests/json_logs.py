"""Capturing LOG_FORMAT=json output in tests: a JSON handler on the root logger."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from app.log_format import JsonLogFormatter


class JsonLines:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@contextlib.contextmanager
def capture_json_logs() -> Iterator[JsonLines]:
    """What `configure_logging(log_format="json")` installs, writing to memory."""
    lines = JsonLines()
    handler = logging.StreamHandler(lines.stream)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
