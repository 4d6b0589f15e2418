from __future__ import annotations

import base64

import pytest

from app.tokens import (
    InvalidEncryptionKey,
    InvalidTokenFormat,
    TokenCipher,
    TokenDecryptionError,
    client_id_from_token,
    generate_key,
    token_fingerprint,
)


def fake_token(client_id: int, tail: str = "fake-token-for-tests-only-abcdef") -> str:
    first = base64.urlsafe_b64encode(str(client_id).encode()).decode().rstrip("=")
    return f"{first}.FAKE00.{tail}"


def test_client_id_is_decoded_from_the_first_part() -> None:
    assert client_id_from_token(fake_token(123456789012345678)) == 123456789012345678


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-token",
        "a.b.c",
        fake_token(1).replace(".", "", 1),
        "bm90LWRpZ2l0cy1oZXJl.FAKE00." + "x" * 30,
    ],
)
def test_malformed_tokens_are_rejected_without_echoing_them(bad: str) -> None:
    with pytest.raises(InvalidTokenFormat) as info:
        client_id_from_token(bad)
    if bad:
        assert bad not in str(info.value)


def test_fingerprint_is_short_stable_and_distinct() -> None:
    a, b = fake_token(1111111111111111111), fake_token(2222222222222222222)
    assert token_fingerprint(a) == token_fingerprint(" " + a + "\n")
    assert token_fingerprint(a) != token_fingerprint(b)
    assert len(token_fingerprint(a)) == 16
    assert a not in token_fingerprint(a)


def test_first_key_encrypts_and_all_keys_decrypt() -> None:
    old, new = generate_key(), generate_key()
    token = fake_token(333333333333333333)
    old_ciphertext = TokenCipher([old]).encrypt(token)
    rotated = TokenCipher([new, old])
    assert rotated.decrypt(old_ciphertext) == token
    assert not rotated.is_primary(old_ciphertext)
    new_ciphertext = rotated.rotate(old_ciphertext)
    assert rotated.is_primary(new_ciphertext)
    assert TokenCipher([new]).decrypt(new_ciphertext) == token
    assert token not in new_ciphertext


def test_unknown_key_cannot_decrypt() -> None:
    ciphertext = TokenCipher([generate_key()]).encrypt(fake_token(4))
    with pytest.raises(TokenDecryptionError):
        TokenCipher([generate_key()]).decrypt(ciphertext)


def test_bad_key_is_named_by_position() -> None:
    with pytest.raises(InvalidEncryptionKey, match="#2"):
        TokenCipher([generate_key(), "not-a-key"])
    with pytest.raises(InvalidEncryptionKey):
        TokenCipher([])
