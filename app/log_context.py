"""What a log line is about: the bot, the guild, the command, the worker (for JSON logs).

Context variables, so they follow the work rather than the call stack: a bot's runner starts its
tasks in a context naming the bot (every task discord.py, wavelink and our code create from
there inherits it), and the command tree names the guild and command for the task that handles
one interaction. The JSON formatter (`app.log_format`) reads them when a record is formatted.
"""

from __future__ import annotations

import contextvars
import os
import socket
from typing import Any

__all__ = ("bind_interaction", "bot_context", "current", "worker_id")

bot_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("chorus_log_bot_id", default=None)
guild_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("chorus_log_guild_id", default=None)
command: contextvars.ContextVar[str | None] = contextvars.ContextVar("chorus_log_command", default=None)
# Set by a worker that has an identity of its own (issue 13's fleet); else `worker_id()`'s default.
worker: contextvars.ContextVar[str | None] = contextvars.ContextVar("chorus_log_worker", default=None)


def worker_id() -> str:
    """This worker's name in logs, metrics and the dashboard: `host:pid` until the multi-worker
    fleet registers a worker id of its own (then it sets `worker`)."""
    return worker.get() or f"{socket.gethostname()}:{os.getpid()}"


def bot_context(client_id: int) -> contextvars.Context:
    """A copy of the current context naming one bot: run a bot's task starts in it."""
    context = contextvars.copy_context()
    context.run(bot_id.set, client_id)
    return context


def bind_interaction(*, bot: int | None, guild: int | None, command_name: str | None) -> None:
    """Name the bot, guild and command for the rest of the current task (one interaction's)."""
    if bot is not None:
        bot_id.set(bot)
    guild_id.set(guild)
    command.set(command_name)


def current() -> dict[str, Any]:
    """The known fields, for a log line (None values left out)."""
    fields: dict[str, Any] = {
        "bot_id": bot_id.get(),
        "guild_id": guild_id.get(),
        "worker": worker_id(),
        "command": command.get(),
    }
    return {key: value for key, value in fields.items() if value is not None}
