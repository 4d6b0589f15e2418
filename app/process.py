"""What can be known about another process before trusting, or signalling, it (Linux `/proc`).

A pid alone identifies nothing once its process has exited: after a reboot or a container
restart the same number belongs to whatever started next. A process is identified by its pid,
its start time (clock ticks since boot) and the boot it started in. Where `/proc` is missing
these read as unknown, and callers must then refuse to act rather than guess.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ("ProcessIdentity", "boot_id", "command_line", "is_alive", "start_ticks")

_PROC = Path("/proc")


def boot_id() -> str | None:
    with contextlib.suppress(OSError):
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the parenthesised command name, which may hold spaces)."""
    with contextlib.suppress(OSError, IndexError):
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return None


def is_alive(pid: int) -> bool:
    """The pid exists and is not a zombie (a zombie has exited and only waits to be reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    with contextlib.suppress(IndexError, ValueError, TypeError):
        return int(fields[19]) if fields is not None else None
    return None


def command_line(pid: int) -> list[str] | None:
    with contextlib.suppress(OSError):
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return None


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    pid: int
    started: int | None  # clock ticks since boot
    boot: str | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid=pid, started=start_ticks(pid), boot=boot_id())

    def is_running(self) -> bool:
        """The very process this identity was taken of is still running: same pid, same start
        time, same boot. False whenever that cannot be established."""
        if self.started is None or not is_alive(self.pid):
            return False
        if self.boot is not None and self.boot != boot_id():
            return False
        return start_ticks(self.pid) == self.started
