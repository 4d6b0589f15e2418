"""What every operator command shares: settings, running async work, errors, consoles, tables.

Command output (tables, results) goes to stdout; problems and logs go to stderr. Exit codes:
0 done, 1 the operation failed (invalid seed, a bot failed, an unreadable token), 2 the command
could not run (configuration, database, unknown bot, bad arguments), 130 interrupted (Ctrl-C or
SIGTERM), after saying what was and was not done.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from app.config_errors import EXIT_UNUSABLE
from app.config_errors import load_command_settings as load_settings
from app.db.connection import DatabaseUnavailable
from app.embedded import EmbeddedDatabaseError
from app.runtime import ConfigurationError
from app.tokens import InvalidEncryptionKey

__all__ = (
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_UNUSABLE",
    "Interrupted",
    "fail",
    "help_text",
    "load_settings",
    "new_table",
    "run",
    "stderr",
    "stdout",
    "uninterrupted",
)

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped the command; the database it opened (or started) is closed."""


class _InterruptGuard:
    """The first signal cancels the command (after its current uninterrupted step); later ones
    only say that it is still cleaning up, so cleanup (stopping an embedded database this
    command started) always finishes."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self._steps = 0
        self.requested = False

    def signal(self) -> None:
        if self.requested:
            typer.echo("chorus: still stopping cleanly (closing the database); please wait", err=True)
            return
        self.requested = True
        if not self._steps:
            self._task.cancel()

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self._steps += 1
        try:
            yield
        finally:
            self._steps -= 1
            if self.requested and not self._steps:
                self._task.cancel()  # honoured at the next await, after the step's work


# The running command's guard: set by `run` in the task that runs the command.
_guard: ContextVar[_InterruptGuard | None] = ContextVar("chorus_interrupt_guard", default=None)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A step that an interrupt waits for (a write that must happen whole or not at all)."""
    guard = _guard.get()
    if guard is None:
        yield
        return
    with guard.step():
        yield


async def _guarded(main: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    guard = _InterruptGuard(task)
    _guard.set(guard)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, guard.signal)
    try:
        return await main
    except asyncio.CancelledError:
        if guard.requested:
            raise Interrupted from None
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def help_text(command: Callable[..., object]) -> str:
    """The command's docstring with each paragraph on one line: typer's rich help keeps single
    line breaks, which would print the source's wrapping instead of the terminal's."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"chorus: {message}", err=True)
    raise typer.Exit(code)


def run(main: Coroutine[Any, Any, T], *, interrupted: str | Callable[[], str] | None = None) -> T:
    """`asyncio.run`, turning "cannot run at all" errors into a message and exit code 2.

    Ctrl-C or SIGTERM cancels `main` (cleanup included: the database closes, an embedded one
    this command started stops) and raises `Interrupted`; with `interrupted` given, that
    message is printed instead and the command exits 130.
    """
    try:
        return asyncio.run(_guarded(main))
    except (ConfigurationError, InvalidEncryptionKey, DatabaseUnavailable, EmbeddedDatabaseError) as exc:
        fail(str(exc), EXIT_UNUSABLE)
    except Interrupted:
        if interrupted is None:
            raise
        message = interrupted if isinstance(interrupted, str) else interrupted()
        fail(f"interrupted: {message}", EXIT_INTERRUPTED)


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
