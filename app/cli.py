"""The `chorus` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from types import FrameType

import typer
import uvicorn
from fastapi import FastAPI

from app.config_errors import exit_unusable, load_command_settings
from app.db.connection import DatabaseUnavailable
from app.embedded import EmbeddedDatabaseError
from app.music.config import InvalidNodeSpec, parse_lavalink_nodes
from app.ops.cli import register as register_operator_commands
from app.ops.no_echo import NoEchoCommand
from app.runtime import (
    ConfigurationError,
    apply_discord_endpoints,
    freeze_startup_objects,
    open_store,
    resolve_cipher,
)
from app.settings import Settings
from app.shutdown import EXIT_GRACE, ExitDeadline
from app.tokens import InvalidEncryptionKey, InvalidTokenFormat, client_id_from_token, generate_key

cli = typer.Typer(help="Chorus: a fleet of Discord music bots in one process.", no_args_is_help=True)

_log = logging.getLogger("app.cli")

EXIT_INTERRUPTED = 130

SERVE_EPILOG = """\
Examples:

$ chorus serve                                  (settings from .env and the environment)

$ HTTP_PORT=8080 LOG_LEVEL=DEBUG chorus serve

$ curl -s localhost:3000/health                 (another terminal)

Exit codes: 0 after a clean stop (Ctrl-C, SIGTERM), 2 when it cannot start (a bad setting, the
database unreachable, the port taken), each with one line saying why; 3 when a stop outlived
SHUTDOWN_TIMEOUT by 15 s and the process ended itself, leaving what was still running.
"""

GEN_KEY_EPILOG = """\
Examples:

$ chorus gen-key

$ echo "TOKEN_ENCRYPTION_KEYS=$(chorus gen-key)" >> .env

It reads no settings, so it works even while .env has a mistake in it.
"""


def _preflight(settings: Settings) -> None:
    """Fail before binding the port, with one line per problem, when the configuration cannot work."""
    problems: list[str] = []
    try:
        resolve_cipher(settings)
    except (ConfigurationError, InvalidEncryptionKey) as exc:
        problems.append(str(exc))
    try:
        parse_lavalink_nodes(settings.lavalink_nodes)
    except InvalidNodeSpec as exc:
        problems.append(str(exc))
    if settings.discord_token is not None:
        try:
            client_id_from_token(settings.discord_token.get_secret_value())
        except InvalidTokenFormat as exc:
            problems.append(f"DISCORD_TOKEN: {exc}")
    if problems:
        exit_unusable(problems)


def _listen(settings: Settings) -> socket.socket:
    """Bind the HTTP port now, so a port that is taken fails at once and in one line."""
    host, port = settings.http_host, settings.http_port
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        exit_unusable([f"HTTP_HOST: cannot listen on {host!r}: {exc.strerror or exc}"])
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        exit_unusable([f"HTTP_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"])
    sock.set_inheritable(True)
    return sock


SERVER_TICK = 1.0  # seconds between two of uvicorn's housekeeping ticks (its own: 0.1 s)


class _Server(uvicorn.Server):
    """uvicorn's server, whose stop (SIGTERM, Ctrl-C) arms the process's exit deadline: the stop
    gets SHUTDOWN_TIMEOUT for the bots and EXIT_GRACE for the rest, then the process exits.

    uvicorn's main loop ticks ten times a second to notice a stop (and refreshes its Date header
    every tenth tick): an idle worker's event loop woke ten times a second for it. Here it ticks
    every `SERVER_TICK` (each tick refreshes the header), and a stop wakes it at once."""

    def __init__(self, config: uvicorn.Config, exit_deadline: ExitDeadline) -> None:
        super().__init__(config)
        self.exit_deadline = exit_deadline
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    async def main_loop(self) -> None:
        wake = self._wake = (asyncio.get_running_loop(), asyncio.Event())
        counter = 0  # a multiple of 10: uvicorn's on_tick refreshes the Date header
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SERVER_TICK):
                    await wake[1].wait()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.exit_deadline.arm()
        super().handle_exit(sig, frame)
        if self._wake is not None:  # a signal handler: the loop's self-pipe wakes it
            loop, event = self._wake
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(event.set)


class _StartupInterrupted(Exception):
    """Ctrl-C or SIGTERM arrived before the service was up; everything started was stopped."""


async def _serve(server: uvicorn.Server, app: FastAPI, settings: Settings, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            task.cancel()

    # Until the server runs, a signal cancels the start-up: what was started (the embedded
    # database) is stopped on the way out. From then on uvicorn handles signals: a graceful
    # shutdown, after which it re-raises them into no-op handlers, so the process exits 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    try:
        apply_discord_endpoints(settings)
        async with open_store(settings) as store:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
                signal.signal(signum, lambda *_: None)
            app.state.opened_store = store  # the lifespan uses it instead of opening its own
            await server.serve(sockets=[sock])
    except asyncio.CancelledError:
        if interrupted:
            raise _StartupInterrupted from None
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@cli.command(epilog=SERVE_EPILOG, cls=NoEchoCommand)
def serve() -> None:
    """Run the service: the HTTP API and every enabled bot.

    Settings come from the environment and .env (see .env.example). Stops gracefully on Ctrl-C
    or SIGTERM: every bot saves its players and closes its session first.
    """
    from app.api.main import create_app

    settings = load_command_settings()
    _preflight(settings)
    sock = _listen(settings)
    _log.info(
        "Voice runs on Lavalink (LAVALINK_NODES): the bots need none of discord.py's voice "
        "packages (PyNaCl, davey)"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        workers=1,
        log_config=None,  # our root handler and redaction apply to uvicorn's records too
        access_log=False,
        lifespan="on",
    )
    server = _Server(config, ExitDeadline(settings.shutdown_timeout + EXIT_GRACE))
    frozen = freeze_startup_objects()
    _log.debug("%d objects of the start-up kept out of full garbage collections", frozen)
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(server, app, settings, sock))
    except (ConfigurationError, InvalidEncryptionKey, DatabaseUnavailable, EmbeddedDatabaseError) as exc:
        exit_unusable([str(exc)])
    except _StartupInterrupted:
        typer.echo("chorus: interrupted while starting; nothing was left running", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except SystemExit as exc:  # uvicorn's own "could not start" (a failed lifespan startup)
        if exc.code not in (0, None):
            exit_unusable(["the service could not start: see the log lines above"])
        raise
    finally:
        sock.close()
    _exit_after_clean_stop()


def _exit_after_clean_stop() -> None:
    """End the process now that the stop is complete (every bot closed, its lease released or
    its save written, the database clients closed, the event loop closed).

    The interpreter's own teardown would then free every object one by one: with 1,000 bots
    (their clients, caches, cogs, command trees) that took 1-2 s more on an idle machine, growing
    with the bots and with the machine's load, for nothing the stop still needs."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@cli.command("gen-key", epilog=GEN_KEY_EPILOG, cls=NoEchoCommand)
def gen_key() -> None:
    """Print a new Fernet key for TOKEN_ENCRYPTION_KEYS."""
    typer.echo(generate_key())


register_operator_commands(cli)


def main() -> None:
    cli()
