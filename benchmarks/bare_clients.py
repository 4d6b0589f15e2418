"""N bare discord.py clients on the fake gateway, no Chorus: the floor of an idle fleet's CPU.

    python -m benchmarks.bare_clients WORLD READY

WORLD is a JSON file ``{"api_base", "gateway_url", "tokens": [...]}`` (mode 0600: it holds the
fake tokens; read, then deleted). Every client logs in with the intents Chorus uses, no caches,
on uvloop as `chorus serve` runs; once all are ready the process writes READY and stays idle until
SIGTERM. What it spends then is discord.py's own idle cost: each connection's heartbeat thread
(one beat every ~41 s), the ACKs, the timers. The periodic benchmark measures it beside Chorus.

With CHORUS_LOOP_CENSUS_OUT set, the clients run on the stdlib loop with every callback timed
(benchmarks/loop_census.py, as the census run of `chorus serve`), and SIGUSR1 writes a census
snapshot to that path.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import discord
import discord.gateway
import discord.http
import uvloop
import yarl

from app.bots.client import bot_intents


async def _run(world: dict[str, object], ready_path: Path) -> None:
    tokens = world["tokens"]
    assert isinstance(tokens, list)
    clients: list[discord.Client] = []
    ready: list[asyncio.Event] = []
    for _ in tokens:
        client = discord.Client(
            intents=bot_intents(),
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            chunk_guilds_at_startup=False,
            guild_ready_timeout=0.1,
        )
        event = asyncio.Event()
        client.event(_on_ready(event))
        clients.append(client)
        ready.append(event)
    starts = [asyncio.create_task(c.start(str(t))) for c, t in zip(clients, tokens, strict=True)]
    await asyncio.gather(*(event.wait() for event in ready))
    ready_path.write_text(json.dumps({"clients": len(clients)}))  # noqa: ASYNC240  # once, tiny
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    await asyncio.gather(*starts, return_exceptions=True)


def _on_ready(event: asyncio.Event) -> Callable[[], Coroutine[Any, Any, None]]:
    async def on_ready() -> None:
        event.set()

    return on_ready


def main() -> None:
    world_path, ready_path = Path(sys.argv[1]), Path(sys.argv[2])
    world = json.loads(world_path.read_text())
    world_path.unlink()
    discord.http.Route.BASE = str(world["api_base"])
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(str(world["gateway_url"]))
    census_out = os.environ.get("CHORUS_LOOP_CENSUS_OUT")
    if not census_out:
        uvloop.run(_run(world, ready_path))
        return
    from benchmarks import loop_census

    census = loop_census.install()
    out = Path(census_out)

    def dump(signum: int, frame: object) -> None:
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps(census.snapshot()))
        partial.replace(out)

    signal.signal(signal.SIGUSR1, dump)
    asyncio.run(_run(world, ready_path))


if __name__ == "__main__":
    main()
