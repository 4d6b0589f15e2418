"""The `chorus` command."""

from __future__ import annotations

import logging
import signal

import typer
import uvicorn

from app.logs import configure_logging
from app.ops.cli import register as register_operator_commands
from app.runtime import ConfigurationError, resolve_cipher
from app.settings import Settings
from app.tokens import InvalidEncryptionKey, generate_key

cli = typer.Typer(help="Chorus: a fleet of Discord music bots in one process.", no_args_is_help=True)

_log = logging.getLogger("app.cli")


def _load_settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, pymongo_level=settings.log_level_pymongo)
    return settings


@cli.command()
def serve() -> None:
    """Run the service: the HTTP API and every enabled bot."""
    from app.api.main import create_app

    settings = _load_settings()
    try:
        # Fail before binding the port when the configuration cannot work.
        resolve_cipher(settings)
    except (ConfigurationError, InvalidEncryptionKey) as exc:
        typer.echo(f"chorus: {exc}", err=True)
        raise typer.Exit(2) from None
    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, with the handlers that were
    # installed before it: by then every bot is closed, so those handlers only note the signal
    # and the process exits 0 (a clean stop, as systemd and Docker expect).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        workers=1,
        log_config=None,  # our root handler and redaction apply to uvicorn's records too
        access_log=False,
        lifespan="on",
    )


@cli.command("gen-key")
def gen_key() -> None:
    """Print a new Fernet key for TOKEN_ENCRYPTION_KEYS."""
    typer.echo(generate_key())


register_operator_commands(cli)


def main() -> None:
    cli()
