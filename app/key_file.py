"""The generated key file: the token encryption keys of the embedded (development) setup.

Without TOKEN_ENCRYPTION_KEYS and without MONGODB_URL, tokens are encrypted with the keys in
`DATA_DIR/token-encryption.key`: one Fernet key per line, the first encrypts, all decrypt (the
same rule as TOKEN_ENCRYPTION_KEYS). The first use generates it with one key (mode 0600);
`chorus rotate-key --new-key` puts a new key first and keeps the old ones until
`chorus rotate-key --drop-old-keys`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from app.embedded import make_private_dir
from app.tokens import generate_key

__all__ = ("KEY_FILE", "key_file_path", "load_or_create_keys", "read_keys", "write_keys")

_log = logging.getLogger(__name__)

KEY_FILE = "token-encryption.key"


def key_file_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def read_keys(data_dir: Path) -> list[str]:
    """The keys in the file, primary first; empty when there is no file."""
    try:
        text = key_file_path(data_dir).read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def write_keys(data_dir: Path, keys: Sequence[str]) -> None:
    """Replace the file's keys at once (a crash leaves the old file or the new one, never half)."""
    path = key_file_path(data_dir)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{key}\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def load_or_create_keys(data_dir: Path) -> list[str]:
    """The file's keys, generating the file with one key (mode 0600) on first use."""
    path = key_file_path(data_dir)
    make_private_dir(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_keys(data_dir)
    key = generate_key()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    _log.warning(
        "No TOKEN_ENCRYPTION_KEYS set: generated a development key in %s (mode 0600). "
        "Back it up: tokens encrypted with it cannot be read without it. "
        "Set TOKEN_ENCRYPTION_KEYS in production.",
        path,
    )
    return [key]
