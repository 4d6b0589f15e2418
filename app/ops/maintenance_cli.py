"""`chorus rotate-key` and `chorus db`: encryption-key rotation and the embedded database."""

from __future__ import annotations

import sys

import typer

from app.embedded import EmbeddedDatabase, EmbeddedDatabaseError
from app.ops.cli_support import EXIT_UNUSABLE, fail, load_settings, run
from app.ops.embedded_db import AlreadyRunning, DatabaseDied, run_foreground
from app.ops.keys import RotationReport, rotate_tokens
from app.runtime import open_store

__all__ = ("DB_EPILOG", "ROTATE_EPILOG", "db", "rotate_key")

ROTATE_EPILOG = """\
Example: put a new key first and keep the old one after it, so it can still decrypt:

$ chorus gen-key                  (prints NEW)

$ TOKEN_ENCRYPTION_KEYS=NEW,OLD chorus rotate-key

$ chorus rotate-key               (with TOKEN_ENCRYPTION_KEYS=NEW,OLD in .env)

Then keep only NEW in TOKEN_ENCRYPTION_KEYS and restart `chorus serve`.
"""


def rotate_key() -> None:
    """Re-encrypt every stored token with the primary (first) key of TOKEN_ENCRYPTION_KEYS.

    Safe to interrupt and re-run: each token is rewritten on its own, only if it is not on the
    primary key yet and has not changed meanwhile. Exit code 1 if a token cannot be decrypted
    with any configured key (it is named) or changed during the run.
    """
    settings = load_settings()

    async def main() -> RotationReport:
        async with open_store(settings) as store:
            return await rotate_tokens(store.cipher)

    report = run(main())
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
        raise typer.Exit(1)
    if len(settings.encryption_keys) > 1:
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
