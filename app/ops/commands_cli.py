"""`chorus deploy-commands` and `chorus clear-commands`: progress, dry run, per-bot summary."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

import discord.http
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from app.bots.command_sync import SyncResult, SyncTarget, select_targets, sync_commands
from app.bots.commands import command_payloads
from app.db.errors import UnknownBot
from app.ops.cli_support import EXIT_UNUSABLE, fail, load_settings, new_table, run, stderr, stdout
from app.runtime import apply_discord_endpoints, open_store

__all__ = ("CLEAR_EPILOG", "DEPLOY_EPILOG", "clear_commands", "deploy_commands")

GLOBAL_PROPAGATION_NOTE = (
    "Global commands can take up to an hour to appear in every guild; guild commands "
    "(`chorus deploy-commands CLIENT_ID GUILD_ID`) appear at once."
)

DEPLOY_EPILOG = """\
Examples:

$ chorus deploy-commands                  (every enabled bot, global)

$ chorus deploy-commands 1234567890123456789             (one bot)

$ chorus deploy-commands 1234567890123456789 987654321098765432

(one bot in one guild: guild commands appear at once, global ones can take an hour)

$ chorus deploy-commands --dry-run        (print the requests, send nothing)
"""

CLEAR_EPILOG = """\
Examples:

$ chorus clear-commands                   (every enabled bot, global)

$ chorus clear-commands 1234567890123456789              (one bot)

$ chorus clear-commands 1234567890123456789 987654321098765432

(one bot's commands in one guild)
"""

ClientIdArg = Annotated[
    int | None,
    typer.Argument(help="Application id of one bot (default: every enabled bot).", show_default=False),
]
GuildIdArg = Annotated[
    int | None,
    typer.Argument(help="Guild id: that guild's commands instead of the global ones.", show_default=False),
]
IncludeDisabledOpt = Annotated[
    bool, typer.Option("--include-disabled", help="With no CLIENT_ID: disabled bots too.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would be sent; send nothing.")]


def deploy_commands(
    client_id: ClientIdArg = None,
    guild_id: GuildIdArg = None,
    include_disabled: IncludeDisabledOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Register the bots' slash commands with Discord (REST bulk overwrite, no gateway session).

    Each bot logs in over REST only (GET /users/@me), then one PUT replaces its command set.
    Discord's 429 rate limits are waited out as Discord asks; a bot that fails is reported and
    the others carry on; the exit code is 1 if any bot failed.
    """
    _sync(client_id, guild_id, include_disabled=include_disabled, dry_run=dry_run, clear=False)


def clear_commands(
    client_id: ClientIdArg = None,
    guild_id: GuildIdArg = None,
    include_disabled: IncludeDisabledOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Remove the bots' slash commands from Discord (REST bulk overwrite with an empty list).

    Same shapes as deploy-commands: every bot, one bot, or one bot in one guild. Exit code 1
    if any bot failed.
    """
    _sync(client_id, guild_id, include_disabled=include_disabled, dry_run=dry_run, clear=True)


def _sync(
    client_id: int | None, guild_id: int | None, *, include_disabled: bool, dry_run: bool, clear: bool
) -> None:
    settings = load_settings()

    async def main() -> tuple[list[SyncTarget], list[dict[str, Any]], list[SyncResult]]:
        apply_discord_endpoints(settings)
        async with open_store(settings) as store:
            targets = await select_targets(client_id, guild_id, include_disabled=include_disabled)
            payload = [] if clear else await command_payloads()
            if dry_run or not targets:
                return targets, payload, []
            with _progress(len(targets), "Clearing" if clear else "Deploying") as advance:

                def on_result(result: SyncResult) -> None:
                    finished.append(result)
                    advance(result)

                results = await sync_commands(targets, payload, cipher=store.cipher, on_result=on_result)
            return targets, payload, results

    finished: list[SyncResult] = []

    def interrupted() -> str:
        done = sum(result.ok for result in finished)
        return (
            f"the commands of {done} bot(s) were {'cleared' if clear else 'deployed'} before it; "
            "run the command again to finish (it replaces each bot's whole set, so repeating is safe)"
        )

    try:
        targets, payload, results = run(main(), interrupted=interrupted)
    except UnknownBot as exc:
        fail(str(exc), EXIT_UNUSABLE)
    if not targets:
        which = "bots" if include_disabled else "enabled bots"
        typer.echo(f"No {which} in database {settings.mongodb_database!r}: nothing to do.")
        return
    if dry_run:
        _print_dry_run(targets, payload)
        return
    _print_sync_summary(results, clear=clear)
    if any(not result.ok for result in results):
        raise typer.Exit(1)


@contextlib.contextmanager
def _progress(total: int, verb: str) -> Iterator[Callable[[SyncResult], None]]:
    """A progress bar on stderr for several bots in a terminal; silent otherwise. Yields the
    callback that advances it by one finished bot."""
    console = stderr()
    bar = Progress(
        TextColumn(f"{verb} commands"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=total < 2 or not console.is_terminal,
    )
    task = bar.add_task("", total=total)

    def advance(result: SyncResult) -> None:
        bar.update(task, advance=1, description=result.target.name)

    with bar:
        yield advance


def _print_dry_run(targets: Sequence[SyncTarget], payload: list[dict[str, Any]]) -> None:
    base = discord.http.Route.BASE
    typer.echo(f"Dry run: nothing is sent to Discord ({base}).")
    count = len(payload)
    for target in targets:
        typer.echo(
            f"Would PUT {target.endpoint()} for {target.name!r} ({target.client_id}): {count} command(s)"
        )
    typer.echo("Body of every request:")
    typer.echo(json.dumps(payload, indent=2, sort_keys=True))


def _print_sync_summary(results: Sequence[SyncResult], *, clear: bool) -> None:
    """A table of every bot, then each failure's reason whole (not wrapped in a table cell)."""
    table = new_table("Bot", "Client ID", "Scope", "Result")
    for result in results:
        if not result.ok:
            outcome = "FAILED (see below)"
        elif clear:
            outcome = "cleared"
        else:
            outcome = f"ok: {result.detail}"
        table.add_row(result.target.name, str(result.target.client_id), result.target.scope, outcome)
    stdout().print(table)
    failures = [result for result in results if not result.ok]
    if failures:
        typer.echo("Failed:")
        for result in failures:
            target = result.target
            typer.echo(f"  - {target.name!r} ({target.client_id}, {target.scope}): {result.detail}")
    verb = "Cleared" if clear else "Deployed"
    typer.echo(f"{verb} {len(results) - len(failures)} of {len(results)} bot(s); {len(failures)} failed.")
    if not clear and any(result.ok and result.target.guild_id is None for result in results):
        typer.echo(GLOBAL_PROPAGATION_NOTE)
