"""Supervision of one bot: log in, stay connected, retry what can be retried, stop for good
on what cannot (bad token, missing intents, undecryptable token, identify budget)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from pymongo.errors import PyMongoError

from app.bots.backoff import Backoff
from app.bots.client import MusicBotClient
from app.bots.errors import FatalBotError, IdentifyBudgetExceeded, TokenMismatch
from app.bots.router import FleetRouter
from app.bots.status import BotState, BotStatus
from app.db import queries
from app.db.models import MusicBot, utcnow
from app.music.config import LavalinkNodeSpec
from app.music.service import MusicConfig
from app.settings import Settings
from app.shutdown import cancel_bounded, run_bounded
from app.tokens import InvalidTokenFormat, TokenCipher, TokenDecryptionError, client_id_from_token

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

DISCORD_DAILY_IDENTIFY_LIMIT = 1000

# Gateway close codes after which reconnecting with the same settings cannot succeed.
FATAL_CLOSE_CODES: dict[int, str] = {
    4004: "Discord rejected the token on the gateway (close code 4004): it was revoked, reset or mistyped",
    4010: "invalid shard (close code 4010)",
    4011: "sharding required (close code 4011): the bot is in too many guilds for one connection",
    4012: "invalid gateway API version (close code 4012)",
    4013: "invalid intents (close code 4013)",
    4014: (
        "disallowed intents (close code 4014): enable the requested intents for this application "
        "in the Discord developer portal"
    ),
}


class BotRunner:
    """Owns one bot: its current client, its state, and the task that supervises it."""

    def __init__(
        self,
        record: MusicBot,
        *,
        settings: Settings,
        cipher: TokenCipher,
        login_gate: asyncio.Semaphore,
        lavalink_nodes: Sequence[LavalinkNodeSpec] = (),
        router: FleetRouter,
        manager: BotManager | None = None,
        on_failed: Callable[[BotRunner, str], None] | None = None,
    ) -> None:
        assert record.id is not None, "a bot must be stored before it runs"
        self.record = record
        self._settings = settings
        self._cipher = cipher
        self._login_gate = login_gate
        self._lavalink_nodes = lavalink_nodes
        self._router = router
        self._manager = manager
        self._on_failed = on_failed
        self.client: MusicBotClient | None = None
        self.state = BotState.STARTING
        self.since: datetime = utcnow()
        self.last_error: str | None = None
        self._identifies_24h = 0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._sync_wanted = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._state_changed = asyncio.Condition()
        self._backoff = Backoff(
            initial=settings.bot_retry_initial_delay, maximum=settings.bot_retry_max_delay
        )

    # -- public -----------------------------------------------------------------------------

    @property
    def client_id(self) -> int:
        return self.record.client_id

    @property
    def name(self) -> str:
        return self.record.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"bot-{self.client_id}")
        self._sync_task = asyncio.create_task(self._guild_sync_loop(), name=f"bot-{self.client_id}-guilds")

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Close the bot cleanly; idempotent, and bounded: a stuck piece is abandoned, logged."""
        self._stopping = True
        client = self.client
        if client is not None:
            await run_bounded(client.close(), timeout, what=f"Closing bot {self.client_id}")
        await cancel_bounded([self._task, self._sync_task], timeout, what=f"Bot {self.client_id}")
        if self.state is not BotState.FAILED:
            await self._set_state(BotState.STOPPED)

    def status(self) -> BotStatus:
        client = self.client
        ready = self.state is BotState.READY and client is not None
        latency = client.latency if ready and client is not None else float("nan")
        return BotStatus(
            client_id=self.client_id,
            name=self.name,
            state=self.state,
            since=self.since,
            guilds=len(client.guilds) if client is not None and ready else self.record.guild_count,
            users=client.user_count if client is not None and ready else self.record.user_count,
            latency_ms=round(latency * 1000, 1) if latency == latency and latency != float("inf") else None,
            last_error=self.last_error,
            identifies_24h=self._identifies_24h,
        )

    async def wait_for_state(self, *states: BotState, timeout: float = 10.0) -> BotState:
        async with asyncio.timeout(timeout), self._state_changed:
            await self._state_changed.wait_for(lambda: self.state in states)
        return self.state

    # -- supervision ------------------------------------------------------------------------

    async def _set_state(self, state: BotState, *, error: str | None = None) -> None:
        if state is not self.state:
            self.state = state
            self.since = utcnow()
        if error is not None:
            self.last_error = error
        async with self._state_changed:
            self._state_changed.notify_all()

    async def _fail(self, reason: str) -> None:
        _log.error("Bot %r (%d) failed and will not be retried: %s", self.name, self.client_id, reason)
        await self._set_state(BotState.FAILED, error=reason)
        if self._on_failed is not None:
            self._on_failed(self, reason)

    def _decrypt_token(self) -> str:
        token = self._cipher.decrypt(self.record.token_ciphertext)
        try:
            derived = client_id_from_token(token)
        except InvalidTokenFormat as exc:
            raise FatalBotError(f"the stored token is malformed: {exc}") from None
        if derived != self.client_id:
            raise TokenMismatch(f"the stored token belongs to application {derived}, not {self.client_id}")
        return token

    def _new_client(self) -> MusicBotClient:
        client = MusicBotClient(
            client_id=self.client_id,
            name=self.name,
            guild_ready_timeout=self._settings.guild_ready_timeout,
            identify_interval=self._settings.identify_interval,
            before_identify=self._before_identify,
            music_config=self._music_config(),
            fleet=self._router,
            manager=self._manager,
        )
        client.add_listener(self._on_ready, "on_ready")
        client.add_listener(self._on_resumed, "on_resumed")
        client.add_listener(self._on_disconnect, "on_disconnect")
        client.add_listener(self._on_guild_change, "on_guild_join")
        client.add_listener(self._on_guild_change, "on_guild_remove")
        return client

    def _music_config(self) -> MusicConfig:
        settings, record = self._settings, self.record
        max_seconds = (
            record.max_track_seconds
            if record.max_track_seconds is not None
            else settings.music_max_track_seconds
        )
        return MusicConfig(
            nodes=self._lavalink_nodes,
            search_prefix=settings.music_search_prefix,
            idle_timeout=settings.music_idle_timeout,
            queue_limit=record.queue_limit or settings.music_queue_limit,
            max_track_ms=max_seconds * 1000,
            health_interval=settings.lavalink_health_interval,
            snapshot_interval=settings.snapshot_interval,
        )

    async def _supervise(self) -> None:
        try:
            token = self._decrypt_token()
        except (TokenDecryptionError, FatalBotError) as exc:
            await self._fail(str(exc))
            return
        while not self._stopping:
            client = self.client = self._new_client()
            try:
                await self._check_identify_budget()  # before any socket exists
                async with self._login_gate:
                    await client.login(token)
                assert client.user is not None
                if client.user.id != self.client_id:
                    raise TokenMismatch(f"the token logs in as user {client.user.id}, not {self.client_id}")
                await client.connect(reconnect=True)
                if self._stopping:
                    return
                raise ConnectionError("the gateway connection ended")
            except FatalBotError as exc:
                await client.abandon_handshake()
                await self._fail(str(exc))
                return
            except discord.LoginFailure:
                await self._fail(
                    "Discord rejected the token (401 Unauthorized): it was revoked, reset or mistyped"
                )
                return
            except discord.PrivilegedIntentsRequired:
                await self._fail(FATAL_CLOSE_CODES[4014])
                return
            except discord.ConnectionClosed as exc:
                if exc.code in FATAL_CLOSE_CODES:
                    await self._fail(FATAL_CLOSE_CODES[exc.code])
                    return
                await self._retry_later(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                await self._retry_later(exc)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

    async def _retry_later(self, exc: BaseException) -> None:
        delay = self._backoff.next_delay()
        error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        await self._set_state(BotState.RECONNECTING, error=error)
        _log.warning("Bot %r (%d) lost its session (%s); retrying on a new client in %.1fs",
                     self.name, self.client_id, error, delay)  # fmt: skip
        await asyncio.sleep(delay)

    async def _check_identify_budget(self) -> None:
        """Raise IdentifyBudgetExceeded when one more IDENTIFY would pass this bot's budget."""
        share = self._settings.identify_budget_share
        budget = int(DISCORD_DAILY_IDENTIFY_LIMIT * share)
        try:
            count = await queries.identifies_in_window(self.client_id)
        except PyMongoError:
            count = self._identifies_24h
        if count >= budget:
            raise IdentifyBudgetExceeded(
                f"{count} IDENTIFYs in the last 24 h reached the budget of {budget} "
                f"({share:.0%} of Discord's {DISCORD_DAILY_IDENTIFY_LIMIT}/day); stopped so Discord "
                "does not reset the token. Fix the cause, then restart the bot."
            )

    async def _before_identify(self, initial: bool) -> None:
        await self._check_identify_budget()
        try:
            self._identifies_24h = await queries.record_identify(self.client_id)
        except PyMongoError as exc:
            # The database blinking must not keep a bot offline: count locally meanwhile (the
            # budget check falls back to this count while the database is unreachable).
            self._identifies_24h += 1
            _log.warning("Bot %d: could not persist its IDENTIFY count (%s)", self.client_id, exc)

    # -- gateway events -----------------------------------------------------------------------

    async def _on_ready(self) -> None:
        self._backoff.reset()
        await self._set_state(BotState.READY)
        client = self.client
        _log.info("Bot %r (%d) is ready in %d guild(s)", self.name, self.client_id,
                  len(client.guilds) if client else 0)  # fmt: skip
        self._sync_wanted.set()

    async def _on_resumed(self) -> None:
        await self._set_state(BotState.READY)
        self._sync_wanted.set()

    async def _on_disconnect(self) -> None:
        if not self._stopping and self.state is BotState.READY:
            await self._set_state(BotState.RECONNECTING)

    async def _on_guild_change(self, guild: discord.Guild) -> None:
        self._sync_wanted.set()

    # -- guild records ------------------------------------------------------------------------

    async def _guild_sync_loop(self) -> None:
        """Bring `ServerMusicBot` and the counts in line with the live guild list.

        One loop per bot, woken by READY/RESUMED/join/remove: events that arrive during a sync
        coalesce into the next one, and a database outage is retried until it passes.
        """
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            client = self.client
            if client is None or self.state is not BotState.READY:
                continue
            guild_ids = [guild.id for guild in client.guilds]
            failed = {guild.id: reason for guild in client.guilds if (reason := _cannot_play_in(guild))}
            try:
                assert self.record.id is not None
                activated, removed = await queries.reconcile_bot_guilds(
                    self.record.id, guild_ids, failed=failed
                )
                self.record.guild_count, self.record.user_count = len(guild_ids), client.user_count
                await queries.update_bot_guild_count(
                    self.client_id, guild_count=len(guild_ids), user_count=client.user_count
                )
            except PyMongoError as exc:
                delay = backoff.next_delay()
                _log.warning(
                    "Bot %d: guild records not saved (%s); retrying in %.1fs", self.client_id, exc, delay
                )
                await asyncio.sleep(delay)
                self._sync_wanted.set()
                continue
            backoff.reset()
            if activated or removed:
                _log.info("Bot %d guilds: %d activated, %d removed", self.client_id, activated, removed)


def _cannot_play_in(guild: discord.Guild) -> str | None:
    """Why the bot cannot play music in this guild at all (server-wide permissions), or None."""
    permissions = guild.me.guild_permissions
    missing = [
        name for name, ok in (("Connect", permissions.connect), ("Speak", permissions.speak)) if not ok
    ]
    return f"missing permission: {', '.join(missing)}" if missing else None
