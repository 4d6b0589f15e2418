"""The fake Lavalink node (tests/fakes/lavalink.py) as a process of its own, for benchmarks.

    python -m benchmarks.fake_lavalink_server --tracks 100 --out lavalink.json

Registers tracks ``t1..tN`` ("Song n", ``https://music.example/tn``), writes
``{"uri", "password", "control_url"}`` to ``--out`` (mode 0600), then serves until SIGTERM or
SIGINT. ``GET <control_url>/bench/sessions`` answers how many wavelink sessions are connected, so
the harness can wait for every bot's node connection before it measures.

Like Lavalink, it sends every connected session a ``stats`` op every ``--stats-interval`` seconds
(60, Lavalink's own period; 0: never), so an idle fleet's measurement includes that traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from tests.fakes.lavalink import FakeLavalink


def track_uri(n: int) -> str:
    return f"https://music.example/t{n}"


async def send_stats(node: FakeLavalink, interval: float) -> None:
    """What Lavalink does once a minute: a `stats` op to every session."""
    while True:
        await asyncio.sleep(interval)
        for session in list(node.sessions.values()):
            if session.connected:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await session.send({"op": "stats", **node.stats()})


async def serve(*, tracks: int, out: Path, stats_interval: float = 60.0) -> None:
    node = FakeLavalink(autoclock=False)
    await node.start()
    control = web.Application()

    async def sessions(request: web.Request) -> web.Response:
        connected = sum(1 for session in node.sessions.values() if session.connected)
        return web.json_response({"connected": connected})

    control.router.add_get("/bench/sessions", sessions)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        for n in range(1, tracks + 1):
            node.add_track(identifier=f"t{n}", title=f"Song {n}", author="Band", uri=track_uri(n))
        host, port = runner.addresses[0][:2]
        document = {"uri": node.uri, "password": node.password, "control_url": f"http://{host}:{port}",
                    "pid": os.getpid()}  # fmt: skip
        partial = out.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        partial.replace(out)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        stats = asyncio.create_task(send_stats(node, stats_interval)) if stats_interval > 0 else None
        await stop.wait()
        if stats is not None:
            stats.cancel()
    finally:
        await runner.cleanup()
        await node.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stats-interval", type=float, default=60.0,
                        help="seconds between stats ops to each session, as Lavalink (0: none)")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(tracks=args.tracks, out=args.out, stats_interval=args.stats_interval))


if __name__ == "__main__":
    main()
