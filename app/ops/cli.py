"""The operator subcommands of `chorus`, added to the main typer app by `register`."""

from __future__ import annotations

import typer

from app.ops.bots_cli import bots_app
from app.ops.cli_support import help_text
from app.ops.commands_cli import CLEAR_EPILOG, DEPLOY_EPILOG, clear_commands, deploy_commands
from app.ops.invite_cli import INVITE_EPILOG, invite
from app.ops.maintenance_cli import DB_EPILOG, ROTATE_EPILOG, db, rotate_key
from app.ops.seed_cli import SEED_EPILOG, seed

__all__ = ("register",)


def register(app: typer.Typer) -> None:
    """Add seed, deploy-commands, clear-commands, rotate-key, db, invite and the `bots` group."""
    app.command("seed", help=help_text(seed), epilog=SEED_EPILOG)(seed)
    app.command("deploy-commands", help=help_text(deploy_commands), epilog=DEPLOY_EPILOG)(deploy_commands)
    app.command("clear-commands", help=help_text(clear_commands), epilog=CLEAR_EPILOG)(clear_commands)
    app.command("rotate-key", help=help_text(rotate_key), epilog=ROTATE_EPILOG)(rotate_key)
    app.command("db", help=help_text(db), epilog=DB_EPILOG)(db)
    app.command("invite", help=help_text(invite), epilog=INVITE_EPILOG)(invite)
    app.add_typer(bots_app, name="bots")
