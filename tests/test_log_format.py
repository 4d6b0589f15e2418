"""LOG_FORMAT=json: one object per line, the context fields, redaction of every field."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app import log_context
from app.log_format import JsonLogFormatter
from app.logs import _formatter_for
from app.settings import Settings
from tests.fakes.discord import make_fake_token
from tests.json_logs import JsonLines, capture_json_logs

TOKEN = make_fake_token(123456789012345678)


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    with capture_json_logs() as lines:
        yield lines


def test_a_line_is_one_object_with_the_required_fields(json_logs: JsonLines) -> None:
    logging.getLogger("app.example").warning("Bot %s lost its session", "Music 2")
    [line] = json_logs.objects()
    assert line["level"] == "WARNING"
    assert line["logger"] == "app.example"
    assert line["message"] == "Bot Music 2 lost its session"
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert line["worker"] == log_context.worker_id()
    assert "bot_id" not in line and "guild_id" not in line  # only where known


def test_context_fields_follow_the_task(json_logs: JsonLines) -> None:
    context = log_context.bot_context(1111)

    def in_bot() -> None:
        log_context.bind_interaction(bot=None, guild=2222, command_name="play")
        logging.getLogger("app.x").info("inside")

    context.run(in_bot)
    logging.getLogger("app.x").info("outside")
    inside, outside = json_logs.objects()
    assert (inside["bot_id"], inside["guild_id"], inside["command"]) == ("1111", "2222", "play")
    assert "bot_id" not in outside and "command" not in outside  # the caller's context is untouched


def test_every_field_is_redacted(json_logs: JsonLines) -> None:
    log = logging.getLogger("app.secret")
    log.info("token %s", TOKEN, extra={"payload": {"auth": f"Bot {TOKEN}", "list": [TOKEN]}, "raw": TOKEN})
    try:
        raise RuntimeError(f"failed with {TOKEN}")
    except RuntimeError:
        log.exception("boom")
    text = json_logs.stream.getvalue()
    assert TOKEN not in text
    first, second = json_logs.objects()
    assert "[REDACTED]" in first["message"] and first["raw"] == "[REDACTED]"
    assert first["payload"]["list"] == ["[REDACTED]"]
    assert "RuntimeError" in second["exception"] and "[REDACTED]" in second["exception"]


def test_settings_choose_the_format() -> None:
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[call-arg]
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]
    assert isinstance(_formatter_for("json"), JsonLogFormatter)
    assert not isinstance(_formatter_for("text"), JsonLogFormatter)
    with pytest.raises(ValueError, match="log_format"):
        Settings(_env_file=None, log_format="xml")  # type: ignore[call-arg]
