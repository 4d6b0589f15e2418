"""Key rotation: re-encrypt every stored token with the primary key of TOKEN_ENCRYPTION_KEYS.

Safe to interrupt and to re-run: each token is rewritten on its own with a compare-and-set on
the old ciphertext (a concurrent change is left alone and counted), and tokens already on the
primary key are skipped. Fingerprints do not depend on keys, so they stay as they are.

A rotation must never leave the service unable to read its tokens: `check_rotation_target`
refuses a primary key that the service's own configuration (`.env`, or the generated key file
of the embedded setup) does not hold.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values

from app.db.models import MusicBot
from app.key_file import key_file_path, read_keys
from app.settings import Settings
from app.tokens import TokenCipher, TokenDecryptionError

__all__ = (
    "KeySource",
    "RotationRefused",
    "RotationReport",
    "check_rotation_target",
    "key_source",
    "rotate_tokens",
)

KEYS_SETTING = "TOKEN_ENCRYPTION_KEYS"

KeySource = Literal["environment", "env-file", "key-file"]


class RotationRefused(Exception):
    """Rotating now would strand the tokens; the message says what to do instead."""


def _lookup(values: Mapping[str, str | None], name: str) -> str:
    # Settings names are case-insensitive (pydantic-settings' default), in .env and the environment.
    for key, value in values.items():
        if key.upper() == name and value and value.strip():
            return value
    return ""


def _split(raw: str) -> list[str]:
    return [key.strip() for key in raw.split(",") if key.strip()]


def key_source(settings: Settings, *, environ: Mapping[str, str] | None = None) -> KeySource:
    """Where this command's keys come from: the process environment, `.env`, or the key file."""
    if not settings.encryption_keys:
        return "key-file"
    in_environment = _lookup(environ if environ is not None else os.environ, KEYS_SETTING)
    return "environment" if in_environment else "env-file"


def check_rotation_target(
    settings: Settings, *, environ: Mapping[str, str] | None = None, env_file: Path = Path(".env")
) -> None:
    """Refuse to re-encrypt with a primary key that `chorus serve`, configured as it is, would
    not have. Keys given only in this command's environment are the trap: the service reads
    `.env`, or in the embedded setup the generated key file."""
    environ = environ if environ is not None else os.environ
    if key_source(settings, environ=environ) != "environment":
        return  # `.env` or the key file: exactly what the service reads
    primary = settings.encryption_keys[0]
    in_file = _lookup(dotenv_values(env_file) if env_file.is_file() else {}, KEYS_SETTING)
    if in_file:
        if primary not in _split(in_file):
            raise RotationRefused(
                f"the new primary key of {KEYS_SETTING} (from this command's environment) is not in "
                f"{env_file}'s {KEYS_SETTING}: a `chorus serve` reading {env_file} could not decrypt the "
                f"re-encrypted tokens. Put it first in {env_file} ({KEYS_SETTING}=NEW,OLD), restart "
                "`chorus serve`, then run `chorus rotate-key` without the variable."
            )
        return
    if settings.uses_embedded_database and primary not in read_keys(settings.data_dir):
        path = key_file_path(settings.data_dir)
        raise RotationRefused(
            f"{KEYS_SETTING} is set only in this command's environment, but `chorus serve` here "
            f"reads its keys from {path} (there is no {KEYS_SETTING} in {env_file}): after this "
            "rotation it could not decrypt a single token. Rotate the key file instead with "
            f"`chorus rotate-key --new-key` (without {KEYS_SETTING}), or put {KEYS_SETTING}=NEW,OLD "
            f"in {env_file} first."
        )
    # Otherwise the service is configured by its environment (systemd, containers): this
    # command cannot see it, and the operator's checklist (docs/OPERATIONS.md) applies.


_log = logging.getLogger(__name__)


@dataclass(slots=True)
class RotationReport:
    rotated: list[tuple[str, int]] = field(default_factory=list)
    already_primary: int = 0
    unreadable: list[tuple[str, int]] = field(default_factory=list)
    # Changed by someone else between our read and our write (a seed, another rotate-key):
    # left alone; a re-run handles them.
    concurrent: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unreadable and not self.concurrent


async def rotate_tokens(cipher: TokenCipher, report: RotationReport | None = None) -> RotationReport:
    """Re-encrypt every token that is not on the primary key. `report` (when given) is filled
    as the rotation goes, so an interrupted run can still say what it did."""
    report = report if report is not None else RotationReport()
    collection: Any = MusicBot.get_pymongo_collection()
    cursor = collection.find({}, {"name": 1, "client_id": 1, "token_ciphertext": 1}).sort("created_at", 1)
    async for doc in cursor:
        bot = (str(doc.get("name", "")), int(doc["client_id"]))
        old = doc["token_ciphertext"]
        if cipher.is_primary(old):
            report.already_primary += 1
            continue
        try:
            new = cipher.rotate(old)
        except TokenDecryptionError:
            _log.error("Bot %r (%d): no configured key decrypts its token", *bot)
            report.unreadable.append(bot)
            continue
        result = await collection.update_one(
            {"_id": doc["_id"], "token_ciphertext": old}, {"$set": {"token_ciphertext": new}}
        )
        if result.modified_count:
            _log.info("Bot %r (%d): token re-encrypted with the primary key", *bot)
            report.rotated.append(bot)
        else:
            _log.warning("Bot %r (%d): changed while rotating; left for the next run", *bot)
            report.concurrent.append(bot)
    return report
