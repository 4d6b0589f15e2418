"""Key rotation: re-encrypt every stored token with the primary key of TOKEN_ENCRYPTION_KEYS.

Safe to interrupt and to re-run: each token is rewritten on its own with a compare-and-set on
the old ciphertext (a concurrent change is left alone and counted), and tokens already on the
primary key are skipped. Fingerprints do not depend on keys, so they stay as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.db.models import MusicBot
from app.tokens import TokenCipher, TokenDecryptionError

__all__ = ("RotationReport", "rotate_tokens")

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


async def rotate_tokens(cipher: TokenCipher) -> RotationReport:
    report = RotationReport()
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
