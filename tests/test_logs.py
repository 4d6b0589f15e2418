from __future__ import annotations

import logging

import pytest

from app.logs import REDACTED, redact
from tests.test_tokens import fake_token

TOKEN = fake_token(987654321098765432)


def test_redact_masks_tokens_headers_and_database_passwords() -> None:
    text = f"token={TOKEN} Authorization: Bot abc.def url=mongodb://chorus:s3cret@db:27017/x"
    masked = redact(text)
    assert TOKEN not in masked
    assert "abc.def" not in masked
    assert "s3cret" not in masked
    assert masked.count(REDACTED) == 3


def test_no_token_reaches_a_log_line_even_through_args_and_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("tests.redaction")
    log.info("logging in with %s", TOKEN)
    log.warning(f"f-string with {TOKEN}")  # noqa: G004  # the point of the test
    try:
        raise RuntimeError(f"bad token {TOKEN}")
    except RuntimeError:
        log.exception("failed")
    text = caplog.text
    assert "logging in with" in text and "failed" in text and "RuntimeError" in text
    assert TOKEN not in text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
