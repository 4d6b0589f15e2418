"""What every operator command shares: settings, running async work, errors, consoles, tables.

Command output (tables, results) goes to stdout; problems and logs go to stderr. Exit codes:
0 done, 1 the operation failed (invalid seed, a bot failed, an unreadable token), 2 the command
could not run (configuration, database, unknown bot, bad arguments).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from app.db.connection import DatabaseUnavailable
from app.embedded import EmbeddedDatabaseError
from app.runtime import ConfigurationError
from app.settings import Settings
from app.tokens import InvalidEncryptionKey

__all__ = (
    "EXIT_FAILED",
    "EXIT_UNUSABLE",
    "fail",
    "help_text",
    "load_settings",
    "new_table",
    "run",
    "stderr",
    "stdout",
)

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def load_settings() -> Settings:
    """Settings and logging exactly as `chorus serve` sets them up."""
    from app.cli import _load_settings  # late: app.cli imports this package to register commands

    return _load_settings()


def help_text(command: Callable[..., object]) -> str:
    """The command's docstring with each paragraph on one line: typer's rich help keeps single
    line breaks, which would print the source's wrapping instead of the terminal's."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"chorus: {message}", err=True)
    raise typer.Exit(code)


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, turning "cannot run at all" errors into a message and exit code 2."""
    try:
        return asyncio.run(main)
    except (ConfigurationError, InvalidEncryptionKey, DatabaseUnavailable, EmbeddedDatabaseError) as exc:
        fail(str(exc), EXIT_UNUSABLE)


def stdout() -> Console:
    # No highlighting: ids and URLs must print exactly, and output is often piped.
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def new_table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table
