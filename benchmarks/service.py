"""The world a benchmark runs in: the database, the fake Discord, stored bots, `chorus serve`."""

from __future__ import annotations

import http.client
import json
import logging
import subprocess
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from app.db.models import MusicBot, ServerMusicBot, ServerStatus
from app.tokens import TokenCipher, token_fingerprint
from benchmarks.processes import (
    BIN,
    PYTHON,
    REPO,
    BenchError,
    Child,
    Children,
    CommandLine,
    base_env,
    describe_command,
    free_port,
    port_open,
    read_json_when_written,
    wait_until,
)

_log = logging.getLogger(__name__)

# The settings a benchmark passes to `chorus serve`, in the order the report shows them.
SERVICE_ENV = (
    "MONGODB_URL",
    "MONGODB_DATABASE",
    "TOKEN_ENCRYPTION_KEYS",
    "HTTP_PORT",
    "DISCORD_API_BASE",
    "DISCORD_GATEWAY_URL",
    "GUILD_READY_TIMEOUT",
    "BOT_LOGIN_CONCURRENCY",
    "LAVALINK_NODES",
    "LEASE_TTL",
    "LOG_LEVEL",
)


@dataclass(frozen=True)
class FakeBotInfo:
    client_id: int
    name: str
    token: str = field(repr=False)


@dataclass
class FakeWorld:
    """The fake Discord process and the bots it knows."""

    api_base: str
    gateway_url: str
    control_url: str  # the harness's control channel into the fake (see fake_discord_server)
    bots: list[FakeBotInfo]
    child: Child
    command: CommandLine


@dataclass
class FakeNode:
    """The fake Lavalink process."""

    uri: str
    password: str = field(repr=False)
    control_url: str
    child: Child
    command: CommandLine

    @property
    def lavalink_nodes(self) -> str:
        return f"bench={self.uri}={self.password}"


def start_database(children: Children) -> tuple[str, CommandLine]:
    """SecantusDB in memory, as its own process. Returns its URL."""
    server = BIN / "secantusd-py"
    if not server.exists():
        raise BenchError(f"{server} is missing: install the embedded extra (pip install -e '.[embedded]')")
    port = free_port()
    argv = [str(server), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
            "--log-level", "ERROR"]  # fmt: skip
    child = children.start("secantusdb", argv, env=base_env())
    wait_until(lambda: port_open(port), timeout=60, what="SecantusDB to listen", watch=[child])
    shown = [a if a != str(port) else "<port>" for a in argv]
    return f"mongodb://127.0.0.1:{port}/?directConnection=true", describe_command("database", shown, {}, ())


def start_fake_discord(children: Children, work_dir: Path, *, bots: int, guilds: int) -> FakeWorld:
    out = work_dir / f"fake-discord-{uuid.uuid4().hex[:8]}.json"
    argv = [PYTHON, "-m", "benchmarks.fake_discord_server", "--bots", str(bots), "--guilds", str(guilds),
            "--out", str(out)]  # fmt: skip
    child = children.start("fake-discord", argv, env=base_env())
    document = read_json_when_written(
        out, what="the fake Discord to start", timeout=60 + bots / 10, watch=[child]
    )
    out.unlink()  # it held the fake tokens; the harness keeps them in memory only from here on
    shown = [*argv[:-1], "<tmp>/world.json"]
    return FakeWorld(
        api_base=document["api_base"],
        gateway_url=document["gateway_url"],
        control_url=document["control_url"],
        bots=[FakeBotInfo(b["client_id"], b["name"], b["token"]) for b in document["bots"]],
        child=child,
        command=describe_command("fake Discord", shown, {}, ()),
    )


def start_fake_lavalink(children: Children, work_dir: Path, *, tracks: int) -> FakeNode:
    out = work_dir / f"fake-lavalink-{uuid.uuid4().hex[:8]}.json"
    argv = [PYTHON, "-m", "benchmarks.fake_lavalink_server", "--tracks", str(tracks), "--out", str(out)]
    child = children.start("fake-lavalink", argv, env=base_env())
    document = read_json_when_written(out, what="the fake Lavalink to start", timeout=60, watch=[child])
    out.unlink()
    shown = [*argv[:-1], "<tmp>/lavalink.json"]
    return FakeNode(uri=document["uri"], password=document["password"], control_url=document["control_url"],
                    child=child, command=describe_command("fake Lavalink", shown, {}, ()))  # fmt: skip


def post_json(url: str, body: dict[str, Any], *, timeout: float) -> Any:
    """POST JSON to a 127.0.0.1 control endpoint and return the decoded answer."""
    return _request_json("POST", url, body, timeout=timeout)


def get_json_url(url: str, *, timeout: float = 2.0) -> Any:
    return _request_json("GET", url, None, timeout=timeout)


def _request_json(method: str, url: str, body: dict[str, Any] | None, *, timeout: float) -> Any:
    parsed = urllib.parse.urlsplit(url)
    if parsed.hostname != "127.0.0.1" or parsed.port is None:
        raise BenchError(f"control URLs are on 127.0.0.1 only, not {url}")
    connection = http.client.HTTPConnection("127.0.0.1", parsed.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, parsed.path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise BenchError(f"{method} {parsed.path}: HTTP {response.status}: {payload[:300]!r}")
        return json.loads(payload)
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"{method} {parsed.path} failed: {exc}") from exc
    finally:
        connection.close()


def bot_document(cipher: TokenCipher, bot: FakeBotInfo) -> dict[str, Any]:
    """A bot record as the seed command stores it: encrypted token, fingerprint, no plaintext."""
    record = MusicBot.model_construct(
        name=bot.name,
        client_id=bot.client_id,
        token_ciphertext=cipher.encrypt(bot.token),
        token_fingerprint=token_fingerprint(bot.token),
    )
    return record.model_dump(exclude={"id", "revision_id"})


def seed_bots(database_url: str, database: str, key: str, bots: list[FakeBotInfo]) -> None:
    """Store the bots the way the seed command does."""
    cipher = TokenCipher([key])
    documents = [bot_document(cipher, bot) for bot in bots]
    client: MongoClient[dict[str, Any]] = MongoClient(database_url, tz_aware=True)
    try:
        if documents:
            client[database][MusicBot.Settings.name].insert_many(documents)
    finally:
        client.close()


def drop_database(database_url: str, database: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    try:
        client.drop_database(database)
    finally:
        client.close()


def guilds_recorded(database_url: str, database: str, *, bots: int) -> bool:
    """Whether every one of the `bots` seeded bots has its guild count and an active guild record:
    what a fleet's first start leaves once its guild sync is over (a restart then writes none)."""
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    try:
        db = client[database]
        counted = db[MusicBot.Settings.name].count_documents({"guild_count": {"$gt": 0}})
        records = db[ServerMusicBot.Settings.name]
        active = records.distinct("music_bot_id", {"status": ServerStatus.ACTIVE.value})
    finally:
        client.close()
    return counted >= bots and len(active) >= bots


def operation_count(database_url: str, *kinds: str) -> int:
    """The database server's count so far of these operations (`serverStatus` opcounters: `query`,
    `insert`, `update`, `delete`...), added up."""
    client: MongoClient[dict[str, Any]] = MongoClient(database_url)
    try:
        counters = client.admin.command("serverStatus")["opcounters"]
    finally:
        client.close()
    return sum(int(counters[kind]) for kind in kinds)


def add_checkout(ref: str, target: Path, *, label: str, progress: Callable[[str], None]) -> Path | None:
    """A detached git worktree of `ref` at `target`, for ServiceOptions.code_dir (a baseline run in
    the same benchmark). None when `ref` is empty or git cannot check it out (an unknown ref, a
    shallow clone): `progress` is told, and the benchmark measures this tree only."""
    if not ref:
        return None
    done = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(target), ref],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    if done.returncode != 0:
        progress(f"  {label}: no baseline ({done.stderr.strip()[:200]}); measuring this tree only")
        return None
    return target


def remove_checkout(path: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                   capture_output=True, timeout=120, check=False)  # fmt: skip


@dataclass(frozen=True)
class ServiceOptions:
    guild_ready_timeout: float | None = None  # None: the service's default (2 s)
    login_concurrency: int | None = None  # None: the service's default (8)
    profile: str | None = None  # a benchmarks.profiled_serve mode, or None for plain `chorus serve`
    profile_out: Path | None = None
    lavalink_nodes: str | None = None  # LAVALINK_NODES, e.g. the fake node's
    lease_ttl: float | None = None  # LEASE_TTL; None: the service's default (15 s)
    code_dir: Path | None = None  # run the `app` of this checkout (PYTHONPATH), e.g. a baseline
    count_commands: Path | None = None  # run benchmarks/counted_serve.py: database commands to this file
    loop_census: bool = False  # with count_commands: the stdlib loop, every callback timed (loop_census.py)


@dataclass
class ChorusProcess:
    child: Child
    port: int
    command: CommandLine

    def get_json(self, path: str, *, timeout: float = 2.0) -> dict[str, Any] | None:
        """GET a JSON endpoint; None while the service does not answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                return None
            return json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            connection.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_http(self, *, timeout: float = 60.0) -> float:
        return wait_until(lambda: self.get_json("/health") is not None, timeout=timeout,
                          what="chorus serve to answer /health", watch=[self.child])  # fmt: skip

    def wait_ready(self, bots: int, *, timeout: float) -> float:
        def all_ready() -> bool:
            health = self.get_json("/health")
            return health is not None and health.get("activeBots") == bots

        # /health walks the fleet: polled every 20 ms at 1,000 bots it would be a share of the
        # start being measured. One poll per 10,000th of a second per bot (0.1 s at 1,000).
        interval = max(0.02, bots / 10_000)
        return wait_until(all_ready, timeout=timeout, what=f"{bots} bot(s) to be ready", interval=interval,
                          watch=[self.child])  # fmt: skip


def start_chorus(
    children: Children,
    world: FakeWorld,
    *,
    database_url: str,
    database: str,
    key: str,
    options: ServiceOptions,
) -> ChorusProcess:
    port = free_port()
    env = base_env(
        MONGODB_URL=database_url,
        MONGODB_DATABASE=database,
        TOKEN_ENCRYPTION_KEYS=key,
        HTTP_PORT=str(port),
        DISCORD_API_BASE=world.api_base,
        DISCORD_GATEWAY_URL=world.gateway_url,
        LOG_LEVEL="WARNING",
    )
    if options.guild_ready_timeout is not None:
        env["GUILD_READY_TIMEOUT"] = f"{options.guild_ready_timeout:g}"
    if options.lavalink_nodes is not None:
        env["LAVALINK_NODES"] = options.lavalink_nodes
    if options.login_concurrency is not None:
        env["BOT_LOGIN_CONCURRENCY"] = str(options.login_concurrency)
    if options.lease_ttl is not None:
        env["LEASE_TTL"] = f"{options.lease_ttl:g}"
    if options.code_dir is not None:
        env["PYTHONPATH"] = str(options.code_dir)
    if options.loop_census:
        if options.count_commands is None or options.code_dir is not None:
            raise ValueError("the loop census needs count_commands, and this tree's code")
        env["CHORUS_LOOP_CENSUS"] = "1"
    if options.count_commands is not None:
        argv = [PYTHON, str(REPO / "benchmarks" / "counted_serve.py"), str(options.count_commands)]
    elif options.profile is None:
        argv = [str(BIN / "chorus"), "serve"]
    else:
        if options.profile_out is None:
            raise ValueError("a profiled service needs profile_out")
        argv = [PYTHON, "-m", "benchmarks.profiled_serve", options.profile, str(options.profile_out)]
    # The working directory is the benchmark's temporary directory: no `.env` is read.
    child = children.start(f"chorus-{database}", argv, env=env)
    shown_argv = [*argv[:-1], "<tmp>/profile"] if options.profile or options.count_commands else argv
    command = describe_command(
        "chorus serve", shown_argv, env, [k for k in SERVICE_ENV if k != "MONGODB_DATABASE"]
    )
    return ChorusProcess(child=child, port=port, command=command)


def new_database_name(prefix: str) -> str:
    return f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
