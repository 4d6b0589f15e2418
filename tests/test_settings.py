from __future__ import annotations

from pathlib import Path

import pytest

from app.runtime import ConfigurationError, resolve_cipher
from app.settings import Settings
from app.tokens import generate_key


def test_defaults_match_the_documentation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONGODB_URL", "DATABASE_URL", "HTTP_PORT", "TOKEN_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.http_port == 3000
    assert settings.uses_embedded_database
    assert settings.discord_api_base == "https://discord.com/api/v10"


def test_database_url_is_accepted_as_the_original_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "mongodb://db.example:27017")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mongodb_url is not None
    assert settings.mongodb_url.get_secret_value() == "mongodb://db.example:27017"
    assert not settings.uses_embedded_database


def test_keys_are_comma_separated_primary_first(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = generate_key(), generate_key()
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", f" {a} , {b} ,")
    assert Settings(_env_file=None).encryption_keys == [a, b]  # type: ignore[call-arg]


def test_explicit_database_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, mongodb_url="mongodb://db:27017", data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="TOKEN_ENCRYPTION_KEYS is required"):
        resolve_cipher(settings)


def test_embedded_mode_generates_a_private_key_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TOKEN_ENCRYPTION_KEYS", raising=False)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    first = resolve_cipher(settings)
    key_file = tmp_path / "data" / "token-encryption.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    ciphertext = first.encrypt("x")
    assert resolve_cipher(settings).decrypt(ciphertext) == "x"


def test_empty_lines_copied_from_env_example_mean_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MONGODB_URL", "DATABASE_URL", "DISCORD_TOKEN", "TOKEN_ENCRYPTION_KEYS", "LAVALINK_NODES"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text((Path(__file__).resolve().parents[1] / ".env.example").read_text())
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.discord_token is None and settings.mongodb_url is None
    assert settings.uses_embedded_database and settings.encryption_keys == []
    assert settings.lavalink_nodes is None and settings.http_port == 3000
