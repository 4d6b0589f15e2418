"""`chorus bots list|add|enable|disable|remove`: one bot at a time, without a seed file."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from app.db.errors import UnknownBot
from app.invite_urls import invite_url
from app.ops.bots_admin import BotSummary, TokenState, list_bots, remove_bot, set_enabled
from app.ops.cli_support import (
    EXIT_UNUSABLE,
    Interrupted,
    fail,
    help_text,
    load_settings,
    new_table,
    run,
    stdout,
    uninterrupted,
)
from app.ops.no_echo import NoEchoCommand
from app.ops.seed import SeedChange, SeedConflict, SeedRejected, validate_seed
from app.ops.seed_cli import print_seed_result, reject, report_interrupted_seed, write_seed
from app.runtime import apply_discord_endpoints, open_store
from app.tokens import contains_token

__all__ = ("bots_app",)

bots_app = typer.Typer(
    help="Manage single bots: list, add, enable, disable, remove.",
    no_args_is_help=True,
    epilog="Example:\n\n$ chorus bots list",
)


ClientIdArg = Annotated[int, typer.Argument(help="The bot's application id (see `chorus bots list`).")]


def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the stored bots: state, guild counts, and whether their token is readable.

    The Token column says `primary` (encrypted with the first key), `old-key` (readable, run
    `chorus rotate-key`) or `unreadable` (no configured key decrypts it). Shards is the bot's
    `shard_count` override, or `auto` (one connection, or as many as Discord requires). Exit
    code 1 when an enabled bot's token is unreadable: `chorus serve` could not start that bot.
    """
    settings = load_settings()

    async def main() -> list[BotSummary]:
        async with open_store(settings) as store:
            return await list_bots(store.cipher)

    bots = run(main(), interrupted="nothing was changed")
    _print_bots(bots, as_json=as_json, database=settings.mongodb_database)
    stranded = [bot for bot in bots if bot.enabled and bot.token is TokenState.UNREADABLE]
    if stranded:
        names = ", ".join(f"{bot.name!r} ({bot.client_id})" for bot in stranded)
        fail(
            f"{len(stranded)} enabled bot(s) have a token no configured key decrypts: {names}. "
            "Put back the key it was encrypted with (see docs/OPERATIONS.md, key rotation), "
            "or store the token again (`chorus bots add`)"
        )


def _print_bots(bots: list[BotSummary], *, as_json: bool, database: str) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": bot.name,
                        "clientId": str(bot.client_id),
                        "enabled": bot.enabled,
                        "guilds": bot.guilds,
                        "users": bot.users,
                        "token": bot.token.value,
                        "shardCount": bot.shard_count,
                        "inviteUrl": invite_url(bot.client_id),
                    }
                    for bot in bots
                ],
                indent=2,
            )
        )
        return
    if not bots:
        typer.echo(f"No bots in database {database!r}. Add one with `chorus bots add NAME`.")
        return
    table = new_table("Name", "Client ID", "Enabled", "Guilds", "Users", "Shards", "Token")
    for bot in bots:
        table.add_row(
            bot.name,
            str(bot.client_id),
            "yes" if bot.enabled else "no",
            str(bot.guilds),
            str(bot.users),
            "auto" if bot.shard_count is None else str(bot.shard_count),
            bot.token,
        )
    stdout().print(table)


ADD_EPILOG = """\
Examples:

$ chorus bots add "Music 1"               (asks for the token, hidden)

$ chorus bots add "Music 1" < token.txt   (first line of stdin)

The token is never taken from the command line: other users of the machine can read it there.
"""


def _read_token() -> str:
    if sys.stdin.isatty():
        return typer.prompt("Bot token (input hidden)", hide_input=True)
    return sys.stdin.readline().strip()


def add_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Display name in Chorus (1-80 characters).")],
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it disabled (not started).")] = False,
    owner_id: Annotated[int | None, typer.Option(help="Discord user id of the bot's owner.")] = None,
    dev_guild_id: Annotated[int | None, typer.Option(help="Guild id used for development.")] = None,
    check_online: Annotated[
        bool, typer.Option("--check-online", help="Validate the token with Discord (GET /users/@me).")
    ] = False,
) -> None:
    """Add a bot, or update the stored bot of the same application, reading its token from a
    prompt or stdin. Validated exactly like a seed entry; the token is stored encrypted."""
    if ctx.args:  # accepted by click only so that they are never printed back
        fail(
            f"bots add takes one argument, the name; {len(ctx.args)} more were given and ignored "
            "(not shown: if one was the token, it is now in your shell history, so reset it in the "
            "Developer Portal). The token is read from the prompt or stdin.",
            EXIT_UNUSABLE,
        )
    settings = load_settings()
    token = _read_token()
    if not token:
        fail("no token given (type it at the prompt, or pipe it on stdin)", EXIT_UNUSABLE)
    entry: dict[str, object] = {"name": name, "token": token}
    if disabled:  # otherwise: enabled when new, unchanged when it updates a stored bot
        entry["enabled"] = False
    if owner_id is not None:
        entry["owner_id"] = owner_id
    if dev_guild_id is not None:
        entry["dev_guild_id"] = dev_guild_id

    written: list[SeedChange] = []

    async def main() -> list[SeedChange]:
        entries = validate_seed([entry])
        apply_discord_endpoints(settings)
        async with open_store(settings) as store:
            return await write_seed(
                entries, store.cipher, online=check_online, dry_run=False, written=written
            )

    try:
        changes = run(main())
    except SeedRejected as exc:
        # One bot: "field 'token': ..." reads better than "entry #1 ...".
        reject(
            "bots add" if contains_token(name) else f"bots add {name!r}",
            [f"field {p.field!r}: {p.message}" if p.field else p.message for p in exc.problems],
        )
    except SeedConflict as exc:
        fail(str(exc))
    except Interrupted:
        report_interrupted_seed(written, database=settings.mongodb_database)
    print_seed_result(changes, database=settings.mongodb_database, dry_run=False)


def _set_enabled(client_id: int, enabled: bool) -> None:
    settings = load_settings()

    state = "enabled" if enabled else "disabled"
    done: list[str] = []

    async def main() -> tuple[str, bool]:
        async with open_store(settings):
            with uninterrupted():
                bot, changed = await set_enabled(client_id, enabled)
                done.append(bot.name)
            return bot.name, changed

    def interrupted() -> str:
        if done:
            return f"bot {done[0]!r} ({client_id}) is {state}; only closing the database was cut short"
        return "nothing was changed"

    try:
        name, changed = run(main(), interrupted=interrupted)
    except UnknownBot as exc:
        fail(str(exc), EXIT_UNUSABLE)
    if not changed:
        typer.echo(f"Bot {name!r} ({client_id}) was already {state}.")
        return
    typer.echo(f"Bot {name!r} ({client_id}) {state}; a running `chorus serve` follows within seconds.")


def enable_command(client_id: ClientIdArg) -> None:
    """Enable a bot: `chorus serve` starts it."""
    _set_enabled(client_id, True)


def disable_command(client_id: ClientIdArg) -> None:
    """Disable a bot: `chorus serve` leaves it offline; its record and token stay stored."""
    _set_enabled(client_id, False)


def remove_command(
    client_id: ClientIdArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a bot, its encrypted token and its guild records from the database.

    Its slash commands stay registered in Discord: run `chorus clear-commands CLIENT_ID` first
    if they should go too (that needs the stored token).
    """
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to remove without confirmation: pass --yes", EXIT_UNUSABLE)
        typer.confirm(f"Remove the bot {client_id} and its records?", abort=True)
    settings = load_settings()

    done: list[str] = []

    async def main() -> str:
        async with open_store(settings):
            with uninterrupted():
                done.append((await remove_bot(client_id)).name)
            return done[0]

    def interrupted() -> str:
        if done:
            return f"bot {done[0]!r} ({client_id}) was removed; only closing the database was cut short"
        return "nothing was removed"

    try:
        name = run(main(), interrupted=interrupted)
    except UnknownBot as exc:
        fail(str(exc), EXIT_UNUSABLE)
    typer.echo(
        f"Removed bot {name!r} ({client_id}). Kick it from its servers in Discord if it is still there."
    )


_EXAMPLE_ID = "1234567890123456789"
for _name, _command, _epilog in (
    ("list", list_command, "Examples:\n\n$ chorus bots list\n\n$ chorus bots list --json"),
    ("add", add_command, ADD_EPILOG),
    ("enable", enable_command, f"Example:\n\n$ chorus bots enable {_EXAMPLE_ID}"),
    ("disable", disable_command, f"Example:\n\n$ chorus bots disable {_EXAMPLE_ID}"),
    (
        "remove",
        remove_command,
        f"Example (commands first: clearing them needs the stored token):\n\n"
        f"$ chorus clear-commands {_EXAMPLE_ID}\n\n$ chorus bots remove --yes {_EXAMPLE_ID}",
    ),
):
    bots_app.command(
        _name,
        help=help_text(_command),
        epilog=_epilog,
        cls=NoEchoCommand,
        context_settings={"allow_extra_args": True} if _name == "add" else None,
    )(_command)
