"""Operator tooling: the `chorus` subcommands that manage the fleet from the command line.

Each module holds one operation (seed, command sync, single-bot admin, key rotation, the
embedded database); `app/ops/cli.py` turns them into typer commands and `app/cli.py`
registers those. None of them opens a gateway session or starts audio.
"""
