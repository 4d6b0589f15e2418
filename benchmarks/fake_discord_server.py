"""The fake Discord (tests/fakes/discord.py) as a process of its own, for benchmarks.

    python -m benchmarks.fake_discord_server --bots 200 --guilds 1 --out world.json

Creates the bots (deterministic application ids, random fake tokens) and the guilds (every bot is
in every guild), writes ``{"api_base", "gateway_url", "bots": [{"client_id", "name", "token"}]}``
to ``--out`` (mode 0600: it holds the fake tokens; the harness deletes it), then serves until
SIGTERM or SIGINT.

A control channel on 127.0.0.1 (``control_url`` in the document) lets the harness drive users:
``POST /bench/voice-guild`` creates a guild with bots, voice channels and users sitting in them;
``POST /bench/play`` sends ``/play`` interactions concurrently and returns, for each, the time from
the INTERACTION_CREATE dispatch to the first callback the fake received (measured in this process,
so the harness's own scheduling is not part of it), with the interaction's id (a forwarded one is
found by it in the fleet's `fleet_requests`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.discord import FakeDiscord

_log = logging.getLogger(__name__)

# Snowflake-shaped (18 digits), deterministic: bot i of a benchmark always has the same id.
FIRST_CLIENT_ID = 900_000_000_000_000_000
FIRST_GUILD_ID = 800_000_000_000_000_000


def bot_name(index: int) -> str:
    return f"Bench Bot {index + 1:03d}"


async def _voice_guild(fake: FakeDiscord, request: web.Request) -> web.Response:
    """A guild with the given bots, a text channel, and users sitting in voice channels."""
    body = await request.json()
    bots = [fake.bots[int(client_id)] for client_id in body["bots"]]
    channels, per_channel = int(body["channels"]), int(body["users_per_channel"])
    guild = fake.add_guild(member_count=channels * per_channel + len(bots))
    for bot in bots:
        await fake.add_bot_to_guild(bot, guild.id)
    users: list[dict[str, int]] = []
    for c in range(channels):
        channel_id = fake.add_voice_channel(guild.id, f"Bench Voice {c + 1}")
        for u in range(per_channel):
            user = fake.add_user(name=f"listener-{c + 1}-{u + 1}")
            fake.add_member(guild.id, user)
            await fake.set_user_voice(guild.id, user.id, channel_id, user=user)
            users.append({"id": user.id, "channel_id": channel_id})
    return web.json_response(
        {"guild_id": str(guild.id), "text_channel_id": str(guild.text_channel_id), "users": users}
    )


async def _one_play(fake: FakeDiscord, guild_id: int, channel_id: int, play: dict[str, Any],
                    timeout: float) -> dict[str, Any]:  # fmt: skip
    bot, user = fake.bots[int(play["bot"])], fake.users[int(play["user"])]
    options = [{"name": "query", "type": 3, "value": str(play["query"])}]
    started = time.perf_counter()
    try:
        interaction = await fake.send_command(bot, guild_id=guild_id, channel_id=channel_id, user=user,
                                              name="play", options=options)  # fmt: skip
        response = await interaction.wait_for_response(timeout=timeout)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        return {"ms": None, "type": None, "error": f"{type(exc).__name__}: {exc}"}
    elapsed = (time.perf_counter() - started) * 1000
    data = response.get("data") or {}
    embeds = data.get("embeds") or [{}]
    text = str(data.get("content") or embeds[0].get("description") or embeds[0].get("title") or "")
    return {"ms": round(elapsed, 3), "type": response.get("type"), "flags": int(data.get("flags") or 0),
            "text": text[:160], "error": None, "interaction": str(interaction.id)}  # fmt: skip


async def _play(fake: FakeDiscord, request: web.Request) -> web.Response:
    body = await request.json()
    guild_id, channel_id = int(body["guild_id"]), int(body["text_channel_id"])
    timeout = float(body.get("timeout", 10.0))
    results = await asyncio.gather(
        *(_one_play(fake, guild_id, channel_id, play, timeout) for play in body["plays"])
    )
    return web.json_response({"results": results})


async def start_control(fake: FakeDiscord) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/bench/voice-guild", lambda request: _voice_guild(fake, request))
    app.router.add_post("/bench/play", lambda request: _play(fake, request))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _runner_url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


async def serve(*, bots: int, guilds: int, out: Path, heartbeat_ms: int) -> None:
    fake = FakeDiscord(heartbeat_interval_ms=heartbeat_ms)
    await fake.start()
    control = await start_control(fake)
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
            "control_url": _runner_url(control),
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
        await control.cleanup()
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
