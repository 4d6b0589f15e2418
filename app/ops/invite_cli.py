"""`chorus invite GUILD_ID`: hand a guild the next bot's invite link from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from app.bots.invites import invite_for
from app.music.fleet import Invite
from app.ops.cli_support import fail, load_settings, run
from app.runtime import open_store

__all__ = ("INVITE_EPILOG", "invite")

INVITE_EPILOG = """\
Example: $ chorus invite 123456789012345678

The chosen bot is recorded PENDING_INVITE for that guild; its join makes it ACTIVE, and an
unused invite expires after INVITE_EXPIRY_SECONDS. Also available as the admin endpoint
POST /guilds/{guild_id}/invite and, in Discord, as /invite.
"""


def invite(guild_id: Annotated[int, typer.Argument(help="The guild (server) id.", min=1)]) -> None:
    """Pick the least-loaded enabled bot with room that is not in the guild, record the invite,
    and print its invite URL. Exit code 1 when every bot is already there or full."""
    settings = load_settings()

    async def main() -> Invite | None:
        async with open_store(settings):
            return await invite_for(guild_id, default_guild_cap=settings.bot_guild_cap)

    chosen = run(
        main(), interrupted="no invite URL was printed (an invite recorded just before it expires by itself)"
    )
    if chosen is None:
        fail(f"no bot can be invited to guild {guild_id}: every enabled bot is there already or full")
    typer.echo(f"Invite {chosen.name} ({chosen.client_id}) to guild {guild_id}:")
    typer.echo(chosen.url)
