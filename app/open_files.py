"""How many files (sockets) the process may open, and what that means for the fleet.

Every bot holds sockets: its gateway websocket, its REST keep-alive connection, and per Lavalink
node a websocket and a REST connection. Linux's default soft limit of 1,024 open files runs out
near 480 bots with one node: EMFILE ("Too many open files"). The soft limit may be raised up to
the hard limit by the process itself, so `chorus` does that at start and logs how many bots the
result leaves room for; past it, a bot's start fails with a reason that says so.
"""

from __future__ import annotations

import errno
import logging
import resource
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

# The HTTP API's connections, the database pool, log files, an embedded database's pipes.
RESERVED_FILES = 64
_NR_OPEN = Path("/proc/sys/fs/nr_open")  # the kernel's ceiling for an unlimited hard limit
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})


def files_per_bot(lavalink_nodes: int) -> int:
    """Gateway websocket + REST connection, and per Lavalink node a websocket + REST connection."""
    return 2 + 2 * lavalink_nodes


@dataclass(frozen=True, slots=True)
class OpenFileLimit:
    soft: int
    hard: int | None  # None: unlimited
    raised_from: int | None  # the soft limit before we raised it; None: left as it was

    def bot_capacity(self, per_bot: int) -> int:
        return max(0, (self.soft - RESERVED_FILES) // max(1, per_bot))


def current_limit() -> OpenFileLimit:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OpenFileLimit(soft=soft, hard=None if hard == resource.RLIM_INFINITY else hard, raised_from=None)


def raise_open_file_limit() -> OpenFileLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the kernel's ceiling when unlimited).

    Never fails: a limit that cannot be raised is logged and kept."""
    limit = current_limit()
    target = limit.hard if limit.hard is not None else _kernel_ceiling()
    if target <= limit.soft:
        return limit
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, limit.hard or resource.RLIM_INFINITY))
    except (ValueError, OSError) as exc:
        _log.warning("Could not raise the open-file limit from %d to %d (%s)", limit.soft, target, exc)
        return limit
    return OpenFileLimit(soft=target, hard=limit.hard, raised_from=limit.soft)


def _kernel_ceiling() -> int:
    try:
        return int(_NR_OPEN.read_text())
    except (OSError, ValueError):
        return 1 << 20


def prepare_for_fleet(*, bots: int, lavalink_nodes: int) -> OpenFileLimit:
    """Raise the limit and log the bot capacity it allows; a warning when `bots` will not fit."""
    limit = raise_open_file_limit()
    per_bot = files_per_bot(lavalink_nodes)
    capacity = limit.bot_capacity(per_bot)
    raised = f", raised from {limit.raised_from}" if limit.raised_from is not None else ""
    _log.info(
        "Open-file limit %d%s: room for about %d bot(s) (%d files each with %d Lavalink node(s))",
        limit.soft, raised, capacity, per_bot, lavalink_nodes,
    )  # fmt: skip
    if bots > capacity:
        _log.warning(
            "%d bots are enabled but the open-file limit (%d) leaves room for about %d: the rest "
            "will fail to start with 'out of file descriptors'. Raise LimitNOFILE / ulimit -n "
            "(docs/OPERATIONS.md)",
            bots, limit.soft, capacity,
        )  # fmt: skip
    return limit


def out_of_files(exc: BaseException) -> bool:
    """EMFILE/ENFILE anywhere in the exception's chain (aiohttp wraps the OSError)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _OUT_OF_FILES:
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "os_error", None)]
    return False


def out_of_files_reason(*, lavalink_nodes: int | None = None) -> str:
    """One line for a bot that could not start for want of file descriptors."""
    limit = current_limit()
    room = ""
    if lavalink_nodes is not None:
        room = f", room for about {limit.bot_capacity(files_per_bot(lavalink_nodes))} bots"
    return (
        f"out of file descriptors (EMFILE): the process may open {limit.soft} files (RLIMIT_NOFILE)"
        f"{room}; raise LimitNOFILE / ulimit -n (docs/OPERATIONS.md) and restart the bot"
    )
