from __future__ import annotations

import logging

import pytest

from app.logs import REASON_MAX, REDACTED, configure_logging, public_reason, redact
from app.tokens import TokenCipher, generate_key
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


def test_ciphertexts_and_fingerprints_are_masked_too() -> None:
    ciphertext = TokenCipher([generate_key()]).encrypt(TOKEN)
    line = f"{{'token_ciphertext': '{ciphertext}', 'token_fingerprint': 'a1b2c3d4e5f60718'}}"
    masked = redact(line)
    assert ciphertext not in masked and "a1b2c3d4e5f60718" not in masked
    assert masked.count(REDACTED) == 2


def test_public_reason_is_one_bounded_line_without_secrets() -> None:
    reason = public_reason(f"Bad\ngateway:\x1b[31m {TOKEN} \u202e" + "x " * 500)
    assert len(reason) <= REASON_MAX and reason.endswith("…")
    assert reason.startswith("Bad gateway: [REDACTED]")
    assert all(c.isprintable() for c in reason)
    assert public_reason("  short  ") == "short"


@pytest.mark.parametrize(
    ("level", "pymongo_level", "expected"),
    [("DEBUG", None, logging.INFO), ("INFO", None, logging.INFO), ("ERROR", None, logging.ERROR),
     ("DEBUG", "DEBUG", logging.DEBUG), ("INFO", "WARNING", logging.WARNING)],
)  # fmt: skip
def test_pymongo_stays_at_info_unless_asked(level: str, pymongo_level: str | None, expected: int) -> None:
    root, pymongo_logger = logging.getLogger(), logging.getLogger("pymongo")
    saved = root.level, pymongo_logger.level, list(root.handlers)
    try:
        configure_logging(level, pymongo_level=pymongo_level)
        assert pymongo_logger.level == expected
        assert (
            not logging.getLogger("pymongo.command").isEnabledFor(logging.DEBUG) or expected == logging.DEBUG
        )
    finally:
        root.setLevel(saved[0])
        pymongo_logger.setLevel(saved[1])
        root.handlers[:] = saved[2]
