"""The fake Discord (tests/fakes/discord.py) as a process of its own, for benchmarks.

    python -m benchmarks.fake_discord_server --bots 200 --guilds 1 --out world.json

Creates the bots (deterministic application ids, random fake tokens) and the guilds (every bot is
in every guild), writes ``{"api_base", "gateway_url", "bots": [{"client_id", "name", "token"}]}``
to ``--out`` (mode 0600: it holds the fake tokens; the harness deletes it), then serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from tests.fakes.discord import FakeDiscord

_log = logging.getLogger(__name__)

# Snowflake-shaped (18 digits), deterministic: bot i of a benchmark always has the same id.
FIRST_CLIENT_ID = 900_000_000_000_000_000
FIRST_GUILD_ID = 800_000_000_000_000_000


def bot_name(index: int) -> str:
    return f"Bench Bot {index + 1:03d}"


async def serve(*, bots: int, guilds: int, out: Path, heartbeat_ms: int) -> None:
    fake = FakeDiscord(heartbeat_interval_ms=heartbeat_ms)
    await fake.start()
    try:
        guild_ids = [fake.add_guild(guild_id=FIRST_GUILD_ID + g, member_count=50).id for g in range(guilds)]
        world: list[dict[str, object]] = []
        for index in range(bots):
            bot = fake.add_bot(name=bot_name(index), client_id=FIRST_CLIENT_ID + index)
            for guild_id in guild_ids:
                await fake.add_bot_to_guild(bot, guild_id)
            world.append({"client_id": bot.client_id, "name": bot.name, "token": bot.token})
        document = {
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "pid": os.getpid(),
            "bots": world,
        }
        partial = out.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        partial.replace(out)  # the harness polls for `out`: it appears complete or not at all
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bots", type=int, required=True)
    parser.add_argument("--guilds", type=int, default=1, help="guilds every bot is in")
    parser.add_argument("--heartbeat-ms", type=int, default=41_250, help="Discord's usual interval")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(bots=args.bots, guilds=args.guilds, out=args.out, heartbeat_ms=args.heartbeat_ms))


if __name__ == "__main__":
    main()
