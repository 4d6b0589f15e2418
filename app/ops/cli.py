"""The operator subcommands of `chorus`, added to the main typer app by `register`."""

from __future__ import annotations

import typer

from app.ops.bots_cli import bots_app
from app.ops.cli_support import help_text
from app.ops.commands_cli import CLEAR_EPILOG, DEPLOY_EPILOG, clear_commands, deploy_commands
from app.ops.invite_cli import INVITE_EPILOG, invite
from app.ops.maintenance_cli import DB_EPILOG, ROTATE_EPILOG, db, rotate_key
from app.ops.no_echo import NoEchoCommand
from app.ops.seed_cli import SEED_EPILOG, seed

__all__ = ("register",)


def register(app: typer.Typer) -> None:
    """Add seed, deploy-commands, clear-commands, rotate-key, db, invite and the `bots` group."""
    for name, command, epilog in (
        ("seed", seed, SEED_EPILOG),
        ("deploy-commands", deploy_commands, DEPLOY_EPILOG),
        ("clear-commands", clear_commands, CLEAR_EPILOG),
        ("rotate-key", rotate_key, ROTATE_EPILOG),
        ("db", db, DB_EPILOG),
        ("invite", invite, INVITE_EPILOG),
    ):
        app.command(name, help=help_text(command), epilog=epilog, cls=NoEchoCommand)(command)
    app.add_typer(bots_app, name="bots")
