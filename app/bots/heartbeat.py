"""Gateway heartbeats on the event loop, with an honest latency: the one seam Chorus opens in
discord.py's heartbeat.

discord.py runs each gateway connection's heartbeat in a thread of its own (`KeepAliveHandler`):
a worker of 1,000 bots ran 1,000 threads, each waking every ~41 s to hand a heartbeat to the
event loop (`run_coroutine_threadsafe`) and block until the loop sent it. The threads cost memory,
context switches and GIL hand-offs on every beat, and the hand-off raced the ACK: the thread
recorded the send time only once the send had completed (`_last_send`), so an ACK handled on the
loop before that read "now minus the *previous* send", the heartbeat interval (≈41 s), and
discord.py logged "Can't keep up, … websocket is 41.3s behind". A duplicate or unsolicited ACK did
the same.

The seam: `discord.gateway.KeepAliveHandler`, which `DiscordWebSocket` looks up by name when it
receives HELLO, is replaced by `HonestKeepAlive`, a subclass that keeps discord.py's interface
(`start`, `stop`, `tick`, `beat`, `ack`, `get_payload`, `latency`) and changes what it does:

- `start()` starts no thread: it arms a timer on the connection's event loop, which sends a
  heartbeat every interval (the next one an interval after the previous send completed, as the
  thread did), or, when nothing was received for discord.py's heartbeat timeout, closes the
  socket with 4000 (a zombie connection: discord.py reconnects). `stop()` cancels the timer.
- `get_payload()`, which discord.py calls right before every heartbeat it sends (ours, the first
  one on HELLO, and one the server asks for), records the send time of the oldest heartbeat not
  yet acknowledged;
- `ack()` measures from that time, and ignores an ACK with no heartbeat outstanding (it precedes
  the recorded send: a duplicate, or early) instead of turning it into a bogus latency.

What the threads also did and this does not: warn, with the loop's stack, when a heartbeat could
not be sent for 10 s because the event loop was blocked (one thread watching the loop would do
that for the whole process; meanwhile a blocked loop shows in every bot's `latencyMs`, since the
ACK waits for the loop too).
tests/bots/test_heartbeat.py checks the seam against the fake gateway (heartbeats, a stray ACK, a
zombie connection, a handshake cut short); a discord.py upgrade that renames a method or stops
looking the class up by name fails it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import discord.gateway
from discord.gateway import KeepAliveHandler

_log = logging.getLogger(__name__)


class HonestKeepAlive(KeepAliveHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # a Thread object, never started
        # perf_counter() when the oldest unacknowledged heartbeat was sent; None: none is.
        self.outstanding_since: float | None = None
        self.stray_acks = 0
        self.beats = 0  # heartbeats this handler sent (the first, on HELLO, is discord.py's)
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        _handlers.add(self)

    @property
    def beating(self) -> bool:
        """Started and not stopped: a heartbeat is due, or being sent."""
        return not self._stop_ev.is_set() and (self._timer is not None or self._sending is not None)

    def start(self) -> None:
        self._schedule()

    def stop(self) -> None:
        self._stop_ev.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        if not self._stop_ev.is_set() and not self.ws.loop.is_closed():
            self._timer = self.ws.loop.call_later(self.interval or 0.0, self._beat)

    def _beat(self) -> None:
        self._timer = None
        if self._stop_ev.is_set():
            return
        if self._last_recv + self.heartbeat_timeout < time.perf_counter():
            _log.warning(
                "Shard ID %s has stopped responding to the gateway. Closing and restarting.", self.shard_id
            )
            self.stop()
            self._sending = asyncio.create_task(self._close_zombie(), name=f"gateway-zombie:{self.shard_id}")
            return
        data = self.get_payload()
        _log.debug(self.msg, self.shard_id, data["d"])
        self._sending = asyncio.create_task(self._send(data), name=f"gateway-heartbeat:{self.shard_id}")

    async def _send(self, data: dict[str, Any]) -> None:
        try:
            await self.ws.send_heartbeat(data)
        except Exception as exc:  # the socket is closing: discord.py's own loop sees why
            _log.debug("Shard ID %s: the heartbeat could not be sent (%r); stopped", self.shard_id, exc)
            self.stop()
            return
        finally:
            self._sending = None
        self.beats += 1
        self._last_send = time.perf_counter()
        self._schedule()

    async def _close_zombie(self) -> None:
        try:
            await self.ws.close(4000)
        except Exception:
            _log.exception("An error occurred while stopping the gateway. Ignoring.")
        finally:
            self._sending = None

    def get_payload(self) -> dict[str, Any]:
        if self.outstanding_since is None:
            self.outstanding_since = time.perf_counter()
        return super().get_payload()

    def ack(self) -> None:
        sent = self.outstanding_since
        if sent is None:
            self.stray_acks += 1
            _log.debug("Shard ID %s: a heartbeat ACK with no heartbeat outstanding, ignored", self.shard_id)
            return
        self.outstanding_since = None
        ack_time = time.perf_counter()
        self._last_ack = ack_time
        self.latency = ack_time - sent
        if self.latency > 10:
            _log.warning(self.behind_msg, self.shard_id, self.latency)


# Every heartbeat handler not yet collected (created on the loop's thread, at HELLO).
_handlers: weakref.WeakSet[HonestKeepAlive] = weakref.WeakSet()


def beating_handlers() -> list[HonestKeepAlive]:
    """Every heartbeat handler still beating (tests check that none is left once its bot stopped)."""
    return [handler for handler in list(_handlers) if handler.beating]


def stop_heartbeats(connection: object, *, socket: object | None = None) -> int:
    """Stop the heartbeats of one client's gateway connections (`connection`: its
    `ConnectionState`, shared by all its shards), or only the one on `socket`; returns how many.

    discord.py stops a heartbeat only when it closes the `DiscordWebSocket` it knows
    (`client.ws`); a handshake cut short (cancelled while it waits to IDENTIFY, or refused) would
    leave its heartbeat going, on a socket nobody reads.
    """
    stopped = 0
    for handler in list(_handlers):
        ws = handler.ws
        if ws._connection is not connection or (socket is not None and ws.socket is not socket):  # pyright: ignore[reportPrivateUsage]  # the seam (module docstring)
            continue
        if not handler._stop_ev.is_set():  # pyright: ignore[reportPrivateUsage]
            handler.stop()
            stopped += 1
    return stopped


def install_honest_heartbeat() -> None:
    """Make every gateway connection opened from now on use `HonestKeepAlive` (idempotent)."""
    if discord.gateway.KeepAliveHandler is not HonestKeepAlive:
        discord.gateway.KeepAliveHandler = HonestKeepAlive  # the documented seam (module docstring)
