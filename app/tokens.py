"""Discord bot tokens: shape, the application id inside them, fingerprints, encryption at rest."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = (
    "FERNET_CIPHERTEXT",
    "NAME_REFUSAL",
    "SECRET_IN_TEXT",
    "TOKEN_PATTERN",
    "InvalidTokenFormat",
    "TokenCipher",
    "TokenDecryptionError",
    "client_id_from_token",
    "contains_token",
    "generate_key",
    "token_fingerprint",
)

# A bot token is three base64url parts: the bot's user id, a timestamp and an HMAC.
TOKEN_PATTERN = re.compile(r"^([A-Za-z0-9_-]{17,40})\.([A-Za-z0-9_-]{4,10})\.([A-Za-z0-9_-]{20,})$")
# Discord ids are positive 64-bit signed integers (MongoDB cannot even query a larger one).
_SNOWFLAKE_LIMIT = 2**63
# Anything that looks like a token inside a longer text. Looser than TOKEN_PATTERN on purpose: it
# also catches JWT-shaped tokens (servers that speak Discord's API without Discord's token shape).
SECRET_IN_TEXT = re.compile(r"[A-Za-z0-9_-]{17,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}")
# A Fernet ciphertext (how tokens are stored): base64url of version byte 0x80 and a timestamp.
FERNET_CIPHERTEXT = re.compile(r"gAAAAA[A-Za-z0-9_-]{20,}=*")

# What a caller says when `contains_token` refuses a name; it never repeats the name itself.
NAME_REFUSAL = "looks like (or contains) a bot token: use a display name (names are shown to everyone)"


class InvalidTokenFormat(ValueError):
    """The string does not have the shape of a Discord bot token."""


class TokenDecryptionError(Exception):
    """A stored token cannot be decrypted with any configured key."""


class InvalidEncryptionKey(ValueError):
    """A configured encryption key is not a valid Fernet key."""


def client_id_from_token(token: str) -> int:
    """The bot's application id, decoded from the first part of its token.

    Never echoes the token in the error: callers log these messages.
    """
    match = TOKEN_PATTERN.match(token.strip())
    if match is None:
        raise InvalidTokenFormat(
            "not a Discord bot token (expected three dot-separated base64url parts, e.g. AAAA.BBBBBB.CCCC...)"
        )
    first = match.group(1)
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidTokenFormat("the token's first part is not base64 of a Discord id") from None
    if not decoded.isdigit() or not 0 < int(decoded) < _SNOWFLAKE_LIMIT:
        raise InvalidTokenFormat("the token's first part is not base64 of a Discord id")
    return int(decoded)


def contains_token(text: str) -> bool:
    """Whether `text` is, or contains, something shaped like a bot token or a stored ciphertext.

    Names are shown to everyone (`/bots`, seed output, clone replies) and stored in plaintext, so
    a token typed into a name field must be refused, not stored.
    """
    return SECRET_IN_TEXT.search(text) is not None or FERNET_CIPHERTEXT.search(text) is not None


def token_fingerprint(token: str) -> str:
    """A short, stable identifier of a token for duplicate detection.

    A truncated SHA-256: tokens carry far more entropy than 64 bits, so this reveals nothing
    usable, and it does not depend on the encryption keys (it survives key rotation).
    """
    return hashlib.sha256(token.strip().encode()).hexdigest()[:16]


def generate_key() -> str:
    return Fernet.generate_key().decode()


class TokenCipher:
    """MultiFernet over the configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise InvalidEncryptionKey("no token encryption key is configured")
        fernets: list[Fernet] = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, binascii.Error):
                raise InvalidEncryptionKey(
                    f"TOKEN_ENCRYPTION_KEYS entry #{index + 1} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; generate one with `chorus gen-key`)"
                ) from None
        self._primary = fernets[0]
        self._fernet = MultiFernet(fernets)

    def encrypt(self, token: str) -> str:
        return self._fernet.encrypt(token.strip().encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            raise TokenDecryptionError(
                "the stored token cannot be decrypted with any configured key "
                "(was TOKEN_ENCRYPTION_KEYS changed without keeping the old key?)"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the primary key (no-op semantics if it already is)."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            raise TokenDecryptionError(
                "the stored token cannot be decrypted with any configured key"
            ) from None

    def is_primary(self, ciphertext: str) -> bool:
        try:
            self._primary.decrypt(ciphertext.encode())
        except (InvalidToken, ValueError):
            return False
        return True
