"""Child processes of a benchmark: start them, measure them from outside, and always stop them.

Memory and CPU are read from /proc (Linux), so the harness needs no psutil: resident memory is
`VmRSS` of /proc/PID/status, proportional memory `Pss` of /proc/PID/smaps_rollup (shared pages
split between the processes that map them), CPU time `utime + stime` of /proc/PID/stat.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

_log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON = sys.executable

# Values of these variables never reach a report or a log line.
SECRET_ENV = frozenset({"TOKEN_ENCRYPTION_KEYS", "DISCORD_TOKEN", "BOT_TOKEN"})
# Variables whose values change from run to run (ports, temporary paths): shown as placeholders.
VOLATILE_ENV = frozenset(
    {"HTTP_PORT", "MONGODB_URL", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "PYTHONPATH", "LAVALINK_NODES"}
)


class BenchError(RuntimeError):
    """A benchmark could not be run (a child died, a timeout passed); the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """A small, explicit environment: nothing of the caller's (no MONGODB_URL, no .env values)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


# -- /proc readings -------------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def rss_bytes(pid: int) -> int:
    """Resident set size of one process."""
    return _status_kib(pid, "VmRSS") * 1024


def pss_bytes(pid: int) -> int | None:
    """Proportional set size (shared pages divided among their users), if the kernel reports it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True)
class Usage:
    """Memory and CPU time of some processes, read one after the other (every RSS, every PSS, then
    every CPU time), in the order of the processes."""

    rss: list[int]
    pss: list[int | None]
    cpu: list[float]

    @property
    def pss_total(self) -> int | None:
        """The processes' PSS added up, None if the kernel did not report it for one of them."""
        known = [p for p in self.pss if p is not None]
        return sum(known) if len(known) == len(self.pss) else None


def usage(children: Sequence[Child]) -> Usage:
    return Usage(
        rss=[rss_bytes(child.pid) for child in children],
        pss=[pss_bytes(child.pid) for child in children],
        cpu=[cpu_seconds(child.pid) for child in children],
    )


def wait_until_idle(
    pid: int, *, threshold: float = 0.1, window: float = 1.0, max_wait: float = 180.0
) -> float:
    """Wait (bounded) until the process uses less than `threshold` of a core over `window`: after
    READY a fleet still loads IDENTIFY logs, syncs guilds and restores players, and its steady
    state is after that. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_wait:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < threshold:
            break
    return time.monotonic() - started


# -- command lines for the report -------------------------------------------------------------


@dataclass(frozen=True)
class CommandLine:
    """How a child was started, with secrets masked and volatile values as placeholders."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def render(self) -> str:
        parts = [f"{key}={value}" for key, value in self.env]
        parts.extend(_shell_quote(arg) for arg in self.argv)
        return " ".join(parts)


def _shell_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./:=,@%+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def describe_command(
    name: str, argv: Sequence[str], env: Mapping[str, str], shown: Sequence[str]
) -> CommandLine:
    """The deterministic form of a command: paths relative to the repository, ports as <port>."""

    def clean(value: str) -> str:
        value = value.replace(str(BIN) + "/", ".venv/bin/").replace(str(REPO) + "/", "")
        return value

    env_items: list[tuple[str, str]] = []
    for key in shown:
        if key not in env:
            continue
        if key in SECRET_ENV:
            env_items.append((key, "<generated>"))
        elif key in VOLATILE_ENV:
            env_items.append((key, f"<{key.lower().replace('_', '-')}>"))
        else:
            env_items.append((key, env[key]))
    args = tuple(clean(arg) for arg in argv)
    return CommandLine(name=name, argv=args, env=tuple(env_items))


# -- children ----------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None]:
    """Runs in the child before exec: the kernel sends it SIGTERM if the harness dies, even by
    SIGKILL (a test timeout), so no database, fake or service outlives a killed benchmark."""

    def setup() -> None:
        libc_name = ctypes.util.find_library("c")
        if libc_name is None:
            return
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the harness died before the line above took effect
            os._exit(1)

    return setup


@dataclass(eq=False)
class Child:
    """One child process, its output in a log file under the benchmark's temporary directory."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _log.warning(
                    "%s (pid %d) ignored SIGTERM for %.0fs: killing it", self.name, self.pid, timeout
                )
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode


@dataclass(eq=False)
class Children:
    """Every process a benchmark starts; all of them are stopped when the block ends."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
    ) -> Child:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        log_path = self.log_dir / f"{safe}-{len(self.children)}.log"
        with open(log_path, "wb") as log:
            started_at = time.monotonic()
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd or self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the harness, which stops them in order
                preexec_fn=_die_with(os.getpid()),  # safe: the harness starts children from one thread
            )
        child = Child(name=name, process=process, log_path=log_path, started_at=started_at)
        self.children.append(child)
        return child

    def stop(self, child: Child, *, timeout: float = 15.0) -> int | None:
        code = child.stop(timeout=timeout)
        if child in self.children:
            self.children.remove(child)
        return code

    def stop_together(self, children: Sequence[Child], *, timeout: float = 15.0) -> list[int | None]:
        """Stop several children in parallel (every SIGTERM first, then each is waited for, and
        killed after `timeout`). Returns their exit codes."""
        _terminate(children)
        return [self.stop(child, timeout=timeout) for child in children]

    def stop_all(self) -> None:
        # Send every SIGTERM first, so N bot processes shut down in parallel, then wait.
        _terminate(self.children)
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception:
                _log.exception("could not stop %s (pid %d)", child.name, child.pid)
        self.children.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def _terminate(children: Sequence[Child]) -> None:
    for child in children:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.02,
    watch: Sequence[Child] = (),
) -> float:
    """Poll until `predicate()` holds; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        for child in watch:
            if not child.alive():
                raise BenchError(f"{child.name} exited (code {child.process.returncode}) while waiting for "
                                 f"{what}:\n{child.tail()}")  # fmt: skip
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def read_json_when_written(
    path: Path, *, what: str, timeout: float, watch: Sequence[Child], interval: float = 0.02
) -> dict[str, Any]:
    """The JSON document a child writes to `path` (when it starts, or when it is signalled)."""
    wait_until(path.exists, timeout=timeout, interval=interval, what=what, watch=watch)
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


# -- the rest of the machine ------------------------------------------------------------------


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used by the whole machine and by this harness with all its children."""

    at: float
    machine: float
    ours: float


def _machine_busy_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def cpu_reading(children: Children) -> CpuReading:
    """Our share counts the harness, every child already reaped, and the children still running."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    for child in children.children:
        with contextlib.suppress(OSError, BenchError):
            ours += cpu_seconds(child.pid)
    return CpuReading(at=time.monotonic(), machine=_machine_busy_seconds(), ours=ours)


def foreign_cpu_share(start: CpuReading, end: CpuReading) -> float:
    """Share of the machine's CPU (all cores) used by processes that are not ours in between."""
    wall = max(end.at - start.at, 1e-9)
    foreign = (end.machine - start.machine) - (end.ours - start.ours)
    return max(foreign, 0.0) / (wall * (os.cpu_count() or 1))


def wait_for_quiet(
    children: Children, *, threshold: float = 0.1, window: float = 1.0, max_wait: float = 30.0
) -> float:
    """Wait (bounded) until other processes use less than `threshold` of the machine's CPU over
    `window` seconds, so a measurement does not start in the middle of someone else's burst.
    Returns the last share seen; when the machine never quiets down, the measurement goes on and
    the report shows the share."""
    deadline = time.monotonic() + max_wait
    while True:
        start = cpu_reading(children)
        time.sleep(window)
        share = foreign_cpu_share(start, cpu_reading(children))
        if share < threshold or time.monotonic() >= deadline:
            return share
