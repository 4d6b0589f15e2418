"""`chorus rotate-key` and `chorus db`: encryption-key rotation and the embedded database."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.embedded import EmbeddedDatabase, EmbeddedDatabaseError
from app.key_file import key_file_path, load_or_create_keys, read_keys, write_keys
from app.ops.cli_support import EXIT_UNUSABLE, fail, load_settings, run
from app.ops.embedded_db import AlreadyRunning, DatabaseDied, run_foreground
from app.ops.keys import RotationRefused, RotationReport, check_rotation_target, key_source, rotate_tokens
from app.runtime import open_store
from app.tokens import generate_key

__all__ = ("DB_EPILOG", "ROTATE_EPILOG", "db", "rotate_key")

ROTATE_EPILOG = """\
Examples. With TOKEN_ENCRYPTION_KEYS in .env: put a new key first and keep the old one after it, so it can
still decrypt, restart `chorus serve`, then re-encrypt:

$ chorus gen-key                          (prints NEW; then TOKEN_ENCRYPTION_KEYS=NEW,OLD in .env)

$ chorus rotate-key

Then keep only NEW in TOKEN_ENCRYPTION_KEYS and restart `chorus serve`.

Embedded setup (no TOKEN_ENCRYPTION_KEYS; the key is DATA_DIR/token-encryption.key):

$ chorus rotate-key --new-key             (a new key first in the file, the old one kept)

$ chorus rotate-key --drop-old-keys       (later: every token on the new key, old keys removed)

A primary key that `chorus serve` would not have (given only in this command's environment
while .env or the key file holds other keys) is refused: the service could not read the tokens.
"""


def rotate_key(
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key",
            help="Embedded setup: put a new key first in DATA_DIR/token-encryption.key (old keys kept).",
        ),
    ] = False,
    drop_old_keys: Annotated[
        bool,
        typer.Option(
            "--drop-old-keys",
            help="Embedded setup: after re-encrypting, remove every key but the first from the key file.",
        ),
    ] = False,
) -> None:
    """Re-encrypt every stored token with the primary (first) key of TOKEN_ENCRYPTION_KEYS, or
    of the generated key file in the embedded setup.

    Safe to interrupt and re-run: each token is rewritten on its own, only if it is not on the
    primary key yet and has not changed meanwhile. Refuses (exit 2) a primary key that the
    service's own configuration would not have. Exit code 1 if a token cannot be decrypted with
    any configured key (it is named) or changed during the run.
    """
    settings = load_settings()
    source = key_source(settings)
    if (new_key or drop_old_keys) and source != "key-file":
        fail(
            "--new-key and --drop-old-keys change the embedded setup's key file, but "
            "TOKEN_ENCRYPTION_KEYS is set: change the keys there (`chorus gen-key`, then NEW,OLD)",
            EXIT_UNUSABLE,
        )
    try:
        check_rotation_target(settings)
    except RotationRefused as exc:
        fail(f"refusing to rotate: {exc}", EXIT_UNUSABLE)
    key_path = key_file_path(settings.data_dir)
    if new_key:
        keys = load_or_create_keys(settings.data_dir)
        write_keys(settings.data_dir, [generate_key(), *keys])
        typer.echo(
            f"Added a new primary key to {key_path}; the {len(keys)} older key(s) stay in it, so every "
            "token stays readable. Restart `chorus serve` so it reads the new key."
        )

    report = RotationReport()

    async def main() -> RotationReport:
        async with open_store(settings) as store:
            return await rotate_tokens(store.cipher, report)

    def interrupted() -> str:
        return (
            f"{len(report.rotated)} token(s) re-encrypted before it, each one whole; run "
            "`chorus rotate-key` again to finish"
        )

    report = run(main(), interrupted=interrupted)
    typer.echo(
        f"Re-encrypted {len(report.rotated)} token(s) with the primary key; "
        f"{report.already_primary} already used it."
    )
    for name, client_id in report.rotated:
        typer.echo(f"  re-encrypted: {name!r} ({client_id})")
    if report.unreadable:
        typer.echo(
            f"{len(report.unreadable)} token(s) cannot be decrypted with any configured key:", err=True
        )
        for name, client_id in report.unreadable:
            typer.echo(
                f"  - {name!r} ({client_id}): add the key it was encrypted with, or re-seed it", err=True
            )
    if report.concurrent:
        names = ", ".join(f"{name!r} ({client_id})" for name, client_id in report.concurrent)
        typer.echo(f"Changed during the rotation, run again: {names}", err=True)
    if not report.complete:
        if drop_old_keys:
            typer.echo(f"The old keys stay in {key_path} until every token uses the primary key.", err=True)
        raise typer.Exit(1)
    if source == "key-file":
        keys = read_keys(settings.data_dir)
        if drop_old_keys and len(keys) > 1:
            write_keys(settings.data_dir, keys[:1])
            typer.echo(
                f"Removed {len(keys) - 1} old key(s) from {key_path}. Keep a copy of them while "
                "backups made before the rotation may be restored: their tokens need them."
            )
        elif len(keys) > 1:
            typer.echo(
                "Every token now uses the primary key: `chorus rotate-key --drop-old-keys` removes the "
                f"{len(keys) - 1} old key(s) from {key_path} (keep a copy while older backups may be "
                "restored)."
            )
    elif len(settings.encryption_keys) > 1:
        typer.echo(
            "Every token now uses the primary key: the other keys can be removed from "
            "TOKEN_ENCRYPTION_KEYS (keep them while backups made before now may be restored)."
        )


DB_EPILOG = """\
Example:

$ chorus db                      (one terminal; Ctrl-C stops it)

$ chorus seed seeds/bots.json    (another terminal: uses it)
"""


def db() -> None:
    """Run the embedded database (SecantusDB) in the foreground until Ctrl-C.

    Only for the embedded mode (no MONGODB_URL). Every other chorus command with the same
    DATA_DIR uses it instead of starting its own, so commands start faster and one copy of the
    data files is open.
    """
    settings = load_settings()
    if not settings.uses_embedded_database:
        fail(
            "MONGODB_URL is set, so this configuration uses that database, not the embedded one; "
            "unset it to use `chorus db`",
            EXIT_UNUSABLE,
        )
    data_dir = settings.data_dir.resolve()

    def ready(url: str) -> None:
        typer.echo(f"Embedded database (SecantusDB) running on {url}")
        typer.echo(
            f"Data in {data_dir / 'db'}. Other chorus commands with DATA_DIR={settings.data_dir} use it."
        )
        typer.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()

    try:
        run_foreground(EmbeddedDatabase(settings.data_dir), on_ready=ready)
    except AlreadyRunning as exc:
        fail(
            f"the embedded database of {data_dir} is already running on {exc.url}, "
            "started by another chorus process; commands use it as it is"
        )
    except EmbeddedDatabaseError as exc:
        fail(str(exc), EXIT_UNUSABLE)
    except DatabaseDied as exc:
        fail(str(exc))
    typer.echo("Embedded database stopped.")
