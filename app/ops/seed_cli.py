"""`chorus seed`: validate a seed file, upsert its bots, print their invite URLs."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from app.invite_urls import INVITE_PERMISSION_NAMES, INVITE_SCOPES, MUSIC_BOT_PERMISSIONS, invite_url
from app.ops.cli_support import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNUSABLE,
    Interrupted,
    fail,
    load_settings,
    new_table,
    run,
    stdout,
    uninterrupted,
)
from app.ops.seed import SeedChange, SeedConflict, SeedRejected, apply_seed, seed_bots, validate_seed
from app.ops.seed_file import SeedEntry, SeedFileError, parse_seed_text
from app.runtime import apply_discord_endpoints, open_store
from app.tokens import TokenCipher

__all__ = ("SEED_EPILOG", "print_seed_result", "reject", "report_interrupted_seed", "seed", "write_seed")

SEED_EPILOG = """\
Examples:

$ chorus seed seeds/bots.json

$ chorus seed --check-online seeds/bots.json    (also ask Discord)

$ chorus seed --dry-run seeds/bots.json         (show, write nothing)

$ docker compose exec -T chorus chorus seed - < seeds/bots.json
"""


def seed(
    file: Annotated[
        str, typer.Argument(help="Seed file (JSON, see seeds/bots.example.json), or - for stdin.")
    ],
    check_online: Annotated[
        bool, typer.Option("--check-online", help="Also validate every token with Discord (GET /users/@me).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show the changes; write nothing.")
    ] = False,
) -> None:
    """Validate a seed file and store its bots (tokens encrypted); print their invite URLs.

    Every entry is checked before anything is written: name, token shape, client id against
    the token, duplicate tokens or applications in the file and in the database. Any problem
    is reported with the entry's number, name and field, and then nothing is written. Bots are
    upserted by application id, so running the same file twice changes nothing.

    Ctrl-C before the write stores nothing; once the write has begun it is finished first and
    the stored bots and their invite URLs are printed. Either way the command exits 130.
    """
    settings = load_settings()
    source = "<stdin>" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the seed file {source}: {exc}", EXIT_UNUSABLE)
    try:
        entries = validate_seed(parse_seed_text(text))
    except (SeedFileError, SeedRejected) as exc:
        reject(source, [str(problem) for problem in exc.problems])

    written: list[SeedChange] = []

    async def main() -> list[SeedChange]:
        apply_discord_endpoints(settings)
        async with open_store(settings) as store:
            return await write_seed(
                entries, store.cipher, online=check_online, dry_run=dry_run, written=written
            )

    try:
        changes = run(main())
    except SeedRejected as exc:
        reject(source, [str(problem) for problem in exc.problems])
    except SeedConflict as exc:
        fail(str(exc))
    except Interrupted:
        report_interrupted_seed(written, database=settings.mongodb_database)
    print_seed_result(changes, database=settings.mongodb_database, dry_run=dry_run)
    if not dry_run:
        typer.echo("\nNext: `chorus deploy-commands`, then open each invite URL to add the bot to a server.")


async def write_seed(
    entries: Sequence[SeedEntry],
    cipher: TokenCipher,
    *,
    online: bool,
    dry_run: bool,
    written: list[SeedChange],
) -> list[SeedChange]:
    """Check and plan (interruptible: nothing is written yet), then write all of it in one step
    that an interrupt waits for; `written` holds the changes once they are stored."""
    changes = await seed_bots(entries, cipher=cipher, online=online, dry_run=True)
    if not dry_run:
        with uninterrupted():
            await apply_seed(changes, cipher)
            written.extend(changes)
    return changes


def report_interrupted_seed(written: Sequence[SeedChange], *, database: str) -> NoReturn:
    """After Ctrl-C: what was stored (with the invite URLs), or that nothing was; exit 130."""
    if not written:
        fail("interrupted before anything was written: no bot was stored or changed", EXIT_INTERRUPTED)
    print_seed_result(written, database=database, dry_run=False)
    fail(
        "interrupted after the write: the bots above were stored; only closing the database was cut short",
        EXIT_INTERRUPTED,
    )


def reject(source: str, problems: Sequence[str]) -> NoReturn:
    """Report every problem on stderr and exit 1."""
    lines = [f"chorus: {source}: {len(problems)} problem(s); nothing was written:"]
    lines += [f"  - {problem}" for problem in problems]
    typer.echo("\n".join(lines), err=True)
    raise typer.Exit(EXIT_FAILED)


def print_seed_result(changes: Sequence[SeedChange], *, database: str, dry_run: bool) -> None:
    """The bots as a table, then one invite URL per line (whole, so it can be copied)."""
    counts = {action: sum(c.action is action for c in changes) for action in {c.action for c in changes}}
    summary = ", ".join(f"{count} {action.value}" for action, count in sorted(counts.items()))
    if dry_run:
        typer.echo(
            f"Dry run, nothing written. Seeding {len(changes)} bot(s) in {database!r} would give: {summary}."
        )
    else:
        typer.echo(f"Seeded {len(changes)} bot(s) in database {database!r}: {summary}.")
    table = new_table("#", "Name", "Client ID", "Enabled", "Result")
    for change in changes:
        entry = change.entry
        enabled = "yes" if change.enabled else "no"
        table.add_row(str(entry.index), entry.name, str(entry.client_id), enabled, change.describe())
    stdout().print(table)
    typer.echo(
        f"Invite URLs (scopes: {' '.join(INVITE_SCOPES)}; permissions {MUSIC_BOT_PERMISSIONS.value} = "
        f"{', '.join(INVITE_PERMISSION_NAMES)}):"
    )
    width = max(len(change.entry.name) for change in changes)
    for change in changes:
        typer.echo(f"  {change.entry.name:<{width}}  {invite_url(change.entry.client_id)}")
