"""Honest gateway latency: the one seam Chorus opens in discord.py's heartbeat.

discord.py runs each gateway connection's heartbeat in a thread of its own (`KeepAliveHandler`),
which records the send time only once the send has completed (`_last_send`, after waiting for the
loop). Against a fast server the ACK is often handled on the loop before that: `latency` then
reads "now minus the *previous* send", the heartbeat interval (≈41 s), and discord.py logs
"Can't keep up, … websocket is 41.3s behind". A duplicate or unsolicited ACK does the same.

The seam: `discord.gateway.KeepAliveHandler`, which `DiscordWebSocket` looks up by name when it
receives HELLO, is replaced by `HonestKeepAlive`, a subclass overriding two methods:

- `get_payload()`, which discord.py calls right before every heartbeat it sends (the thread's,
  the first one on HELLO, and one the server asks for), records the send time of the oldest
  heartbeat not yet acknowledged;
- `ack()` measures from that time, and ignores an ACK with no heartbeat outstanding (it precedes
  the recorded send: a duplicate, or early) instead of turning it into a bogus latency.

The threads stay (one per gateway connection, see docs/PERFORMANCE.md for what they cost);
replacing them would mean re-implementing discord.py's gateway loop. tests/bots/test_heartbeat.py
checks the seam against the fake gateway; a discord.py upgrade that renames either method or
stops looking the class up by name fails it.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import discord.gateway
from discord.gateway import KeepAliveHandler

_log = logging.getLogger(__name__)


class HonestKeepAlive(KeepAliveHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # perf_counter() when the oldest unacknowledged heartbeat was sent; None: none is.
        # Written by the heartbeat thread and the loop; a float store is atomic under the GIL.
        self.outstanding_since: float | None = None
        self.stray_acks = 0
        _handlers.add(self)

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


def stop_heartbeats(connection: object, *, socket: object | None = None) -> int:
    """Stop the heartbeat threads of one client's gateway connections (`connection`: its
    `ConnectionState`, shared by all its shards), or only the one on `socket`; returns how many.

    discord.py stops a heartbeat thread only when it closes the `DiscordWebSocket` it knows
    (`client.ws`); a handshake cut short (cancelled while it waits to IDENTIFY, or refused) leaves
    its thread beating, and once the event loop is closed the thread dies with "Event loop is closed".
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
