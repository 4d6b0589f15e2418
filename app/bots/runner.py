"""Supervision of one bot: log in, stay connected, retry what can be retried, stop for good
on what cannot (bad token, missing intents, undecryptable token, identify budget)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from app import log_context
from app.bots.backoff import Backoff
from app.bots.client import MusicBotClient, ShardedMusicBotClient
from app.bots.errors import FatalBotError, IdentifyDeferred, ShardingRequired, TokenMismatch
from app.bots.events import FleetEvents
from app.bots.guild_sync import GuildSync
from app.bots.identify import IdentifyLedger, IdentifyLogBook, IdentifyPacer
from app.bots.router import FleetRouter
from app.bots.sharding import PLAIN, ShardPlan, ShardPlanner
from app.bots.startup import StartFacts
from app.bots.status import BotState, BotStatus
from app.db.models import MusicBot, utcnow
from app.logs import (
    GatewayLogScope,
    describe_connection_error,
    gateway_scope,
    install_reconnect_log_filter,
    public_reason,
)
from app.music.config import LavalinkNodeSpec
from app.music.scheduler import MusicScheduler
from app.music.service import MusicConfig
from app.open_files import out_of_files, out_of_files_reason
from app.settings import Settings
from app.shutdown import cancel_bounded, run_bounded
from app.tokens import InvalidTokenFormat, TokenCipher, TokenDecryptionError, client_id_from_token

if TYPE_CHECKING:
    from app.bots.manager import BotManager

_log = logging.getLogger(__name__)

# The longest wait before an IDENTIFY spent inside discord.py's handshake, with the socket open
# (discord.py allows the whole handshake 60 s). A longer wait drops the socket and is waited
# out by the supervisor, which then starts a fresh client.
HANDSHAKE_WAIT_MAX = 10.0

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
        scheduler: MusicScheduler,
        manager: BotManager | None = None,
        on_failed: Callable[[BotRunner, str], None] | None = None,
        epoch: int = 0,
        on_change: Callable[[int], None] | None = None,
        events: FleetEvents | None = None,
        start_facts: StartFacts | None = None,
        identify_log: IdentifyLogBook | None = None,
        guild_writers: asyncio.Semaphore | None = None,
    ) -> None:
        assert record.id is not None, "a bot must be stored before it runs"
        self.record = record
        # The lease epoch this runner runs under: carried by its fenced writes (player snapshots,
        # guild records), so a newer owner's data is never overwritten by this one.
        self.epoch = epoch
        self._on_change = on_change
        self._settings = settings
        self._cipher = cipher
        self._login_gate = login_gate
        self._lavalink_nodes = lavalink_nodes
        self._router = router
        self._scheduler = scheduler  # the worker's: every bot's periodic music work
        self._manager = manager
        self._on_failed = on_failed
        self._events = events  # the dashboard's recent fleet events
        self.client: MusicBotClient | None = None
        self.state = BotState.STARTING
        self.since: datetime = utcnow()
        self.last_error: str | None = None
        # Since when (monotonic) the bot has not had a session that held; None while it has one.
        self.down_since: float | None = time.monotonic()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Read for the whole fleet at its start (None: this bot reads its own).
        self._start_facts = start_facts
        self._guilds = GuildSync(
            client_id=self.client_id,
            record=lambda: self.record,
            ready_client=self._ready_client,
            epoch=epoch,
            on_change=self._changed,
            recorded=start_facts.active_guilds if start_facts is not None else None,
            writers=guild_writers,
        )
        self._state_changed = asyncio.Condition()
        self._pacer = IdentifyPacer(
            backoff=Backoff(initial=settings.bot_retry_initial_delay, maximum=settings.bot_retry_max_delay),
            spacing=settings.identify_interval,
        )
        self._login_backoff = Backoff(
            initial=settings.bot_retry_initial_delay, maximum=settings.bot_retry_max_delay
        )
        self._ledger = IdentifyLedger(
            self.client_id,
            budget_share=settings.identify_budget_share,
            book=identify_log,  # the worker's (None: this bot's own)
            log=start_facts.identify_log if start_facts is not None else None,
        )
        self._shard_planner = ShardPlanner(self.client_id, check_guilds=settings.shard_check_guilds)
        self._shard_plan = PLAIN  # the current client's
        self._identified = False  # the current client got as far as an IDENTIFY
        self._cause: str | None = None  # what ended the last session, when an error said so
        self._session = 0  # bumped on every disconnect: an older session's stability watch stops
        self._stability_task: asyncio.Task[None] | None = None
        # The gateway answered this runner's IDENTIFY with READY (every shard's, for a sharded
        # bot): the costly part of its start (login, handshake, IDENTIFY) is over. What is left
        # until `ready` is discord.py's wait for guilds (GUILD_READY_TIMEOUT), a timer.
        self.session_opened = False
        self._shards_opened: set[int] = set()

    # -- public -----------------------------------------------------------------------------

    @property
    def client_id(self) -> int:
        return self.record.client_id

    @property
    def name(self) -> str:
        return self.record.name

    def start(self) -> None:
        # Started in a context naming the bot: every task of it, and all they start (discord.py's,
        # wavelink's), log with its bot_id (LOG_FORMAT=json).
        log_context.bot_context(self.client_id).run(self._start_tasks)

    def _start_tasks(self) -> None:
        install_reconnect_log_filter()
        self._task = asyncio.create_task(self._supervise(), name=f"bot-{self.client_id}")
        self._guilds.start()

    def begin_stop(self) -> None:
        """The bot is about to be stopped (a fleet's paced stop, which stops a few at a time):
        from now on it reconnects no more, so a bot waiting its turn cannot start a new session."""
        self._stopping = True

    def abandon(self) -> None:
        """The shutdown deadline passed before this bot's stop ended: cancel its tasks without
        waiting (the process is exiting; its gateway socket was sent a close frame)."""
        self._stopping = True
        for task in (self._task, self._guilds.task, self._stability_task):
            if task is not None:
                task.cancel()
        self._ledger.abandon()

    async def stop(self, *, timeout: float = 10.0, abandon: bool = False) -> None:
        """Close the bot cleanly; idempotent, and bounded: a stuck piece is abandoned, logged.

        `abandon`: its lease is lost (or about to be), so the gateway session ends at once and
        nothing is written to the database (no player saves: the next owner resumes from the
        last periodic ones; a database that is down must not delay the close)."""
        self._stopping = True
        client = self.client
        if client is not None:
            if abandon:
                client.music.abandon()
            await run_bounded(client.close(), timeout, what=f"Closing bot {self.client_id}")
            if not client.gateway_closed():
                await client.force_close_gateway()
        # A task cancelled in the middle of a database operation can take as long as the database
        # to give up (10 s and more on one that is behind): it is left to finish on its own.
        await cancel_bounded(
            [self._task, self._guilds.task, self._stability_task],
            min(timeout, 2.0),
            what=f"Bot {self.client_id}",
        )
        await self._ledger.close(timeout=min(timeout, 2.0))
        self._router.guilds.forget_bot(self.client_id)
        if self.state is not BotState.FAILED:
            await self._set_state(BotState.STOPPED)

    def start_done(self) -> bool:
        """The start no longer needs a slot of the worker's paced starts: its gateway session is
        open (READY received), or it settled (ready, failed, stopped). A bot still logging in,
        identifying or retrying a failed connection is not done."""
        return self.session_opened or self.state in (BotState.READY, BotState.FAILED, BotState.STOPPED)

    def gateway_closed(self) -> bool:
        """No gateway socket of this bot is open (what a hand-over must prove before release)."""
        client = self.client
        return client is None or client.gateway_closed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.client_id)

    @property
    def identify_ledger(self) -> IdentifyLedger:
        """This bot's IDENTIFYs of the last 24 h and its budget (read by /metrics)."""
        return self._ledger

    @property
    def guild_sync_passes(self) -> int:
        """Passes of this bot's guild-record sync done (tests wait for the one after READY)."""
        return self._guilds.passes

    def _ready_client(self) -> MusicBotClient | None:
        return self.client if self.state is BotState.READY else None

    def lavalink_nodes(self) -> tuple[int, int]:
        """(connected, configured) Lavalink nodes of this bot; (0, 0) when it is not running.

        The one place that asks the music side whether nodes are up."""
        if self.state in (BotState.FAILED, BotState.STOPPED):
            return 0, 0
        client = self.client
        connected = client.music.nodes.connected_count() if client is not None else 0
        return connected, len(self._lavalink_nodes)

    def down_for(self, now: float | None = None) -> float:
        """Seconds the bot has been starting or reconnecting without a session that held."""
        if self.state not in (BotState.STARTING, BotState.RECONNECTING) or self.down_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.down_since

    def status(self, *, worker: str | None = None) -> BotStatus:
        """This bot's status, naming `worker` as the one that runs it (this worker's id, given
        by the caller: building it once, rather than copying it with the worker, keeps a page of
        `/bots` cheap)."""
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
            identifies_24h=self._ledger.count(),
            shards=client.shards_total if client is not None else 1,
            worker=worker,
        )

    async def wait_for_state(self, *states: BotState, timeout: float = 10.0) -> BotState:
        async with asyncio.timeout(timeout), self._state_changed:
            await self._state_changed.wait_for(lambda: self.state in states)
        return self.state

    # -- supervision ------------------------------------------------------------------------

    async def _set_state(self, state: BotState, *, error: str | None = None) -> None:
        old = self.state
        if state is not old:
            self.state = state
            self.since = utcnow()
        if state in (BotState.STARTING, BotState.RECONNECTING) and self.down_since is None:
            self.down_since = time.monotonic()
        if error is not None:
            # Shown by /bots, /clones and the owner's DM: bounded, one line, nothing secret.
            self.last_error = public_reason(error)
        self._changed()
        if self._events is not None and state is not old:
            self._events.state_changed(self.client_id, self.name, old, state, self.last_error)
        async with self._state_changed:
            self._state_changed.notify_all()

    async def _fail(self, reason: str) -> None:
        _log.error("Bot %r (%d) failed and will not be retried: %s", self.name, self.client_id, reason)
        await self._set_state(BotState.FAILED, error=reason)
        self._router.guilds.forget_bot(self.client_id)  # it serves no guild until restarted
        if self._on_failed is not None:
            self._on_failed(self, self.last_error or reason)

    def _decrypt_token(self) -> str:
        token = self._cipher.decrypt(self.record.token_ciphertext)
        try:
            derived = client_id_from_token(token)
        except InvalidTokenFormat as exc:
            raise FatalBotError(f"the stored token is malformed: {exc}") from None
        if derived != self.client_id:
            raise TokenMismatch(f"the stored token belongs to application {derived}, not {self.client_id}")
        return token

    def _new_client(self, plan: ShardPlan) -> MusicBotClient:
        client = (ShardedMusicBotClient if plan.sharded else MusicBotClient)(
            client_id=self.client_id,
            name=self.name,
            guild_ready_timeout=self._settings.guild_ready_timeout,
            before_identify=self._before_identify,
            music_config=self._music_config(),
            fleet=self._router,
            scheduler=self._scheduler,
            manager=self._manager,
            shard_count=plan.count,
        )
        client.add_listener(self._on_ready, "on_ready")
        client.add_listener(self._on_resumed, "on_resumed")
        # READY, before discord.py's wait for guilds: `on_connect` (one per shard's READY).
        self._shards_opened.clear()
        if plan.sharded:
            client.add_listener(self._on_shard_connect, "on_shard_connect")
        else:
            client.add_listener(self._on_connect, "on_connect")
        client.add_listener(self._on_disconnect, "on_disconnect")
        if plan.sharded:  # one shard identifying again gets its READY, not the bot's
            client.add_listener(self._on_shard_ready, "on_shard_ready")
        for event in ("on_guild_join", "on_guild_remove", "on_guild_available", "on_guild_unavailable"):
            client.add_listener(self._on_guild_change, event)
        if self._events is not None:
            self._events.watch(client, bot_id=self.client_id, name=self.name)
        # The fleet's guild index: a guild unavailable (an outage) still has this bot as a member.
        client.add_listener(self._on_guild_in, "on_guild_join")
        client.add_listener(self._on_guild_in, "on_guild_available")
        client.add_listener(self._on_guild_out, "on_guild_remove")
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
            reconnect_max_delay=settings.lavalink_reconnect_max_delay,
            snapshot_max_age=settings.snapshot_max_age,
            lease_epoch=self.epoch,
        )

    def _has_session(self) -> bool:
        client = self.client
        return client is not None and client.ws is not None

    async def _supervise(self) -> None:
        # discord.py's records from this task (its reconnect loop) name this bot. The scope is
        # copied into every task started from here, some long-lived: it must not keep a stopped
        # runner (and its client) alive, hence the weak reference.
        runner = weakref.ref(self)

        def has_session() -> bool:
            alive = runner()
            return alive is not None and alive._has_session()

        gateway_scope.set(GatewayLogScope(f"Bot {self.name!r} ({self.client_id})", has_session))
        try:
            token = self._decrypt_token()
        except (TokenDecryptionError, FatalBotError) as exc:
            await self._fail(str(exc))
            return
        while not self._stopping:
            await self._wait_before_identify()
            plan = self._shard_plan = await self._shard_planner.plan(self.record, token)
            client = self.client = self._new_client(plan)
            facts, self._start_facts = self._start_facts, None  # the first client's only
            if facts is not None and not facts.has_saved_players:
                client.music.snapshots.nothing_saved()
            if facts is not None and not facts.has_voice_assignments:
                client.music.snapshots.nothing_assigned()
            self._identified = False
            try:
                self._ledger.check(needed=plan.count or 1)  # every shard's, before any socket exists
                async with self._login_gate:
                    await client.login(token)
                self._login_backoff.reset()
                assert client.user is not None
                if client.user.id != self.client_id:
                    raise TokenMismatch(f"the token logs in as user {client.user.id}, not {self.client_id}")
                await client.connect(reconnect=True)
                if self._stopping:
                    return
                raise ConnectionError("the gateway connection ended")
            except IdentifyDeferred:
                # The wait is too long to hold a half-open socket: drop it; the loop waits.
                await client.abandon_handshake()
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
                planner = self._shard_planner
                if exc.code == 4011 and planner.sharding_required(self.record, client.shards_total):
                    await self._retry_later(ShardingRequired(client.shards_total))
                elif exc.code in FATAL_CLOSE_CODES:
                    await self._fail(self._fatal_close_reason(exc.code, plan))
                    return
                else:
                    await self._retry_later(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return
                failure = _first_connection_failure(exc, client)
                if out_of_files(failure):
                    # Retrying would only take descriptors from the bots (and the API) that have them.
                    await self._fail(out_of_files_reason(lavalink_nodes=len(self._lavalink_nodes)))
                    return
                await self._retry_later(failure)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

    def _fatal_close_reason(self, code: int, plan: ShardPlan) -> str:
        reason = FATAL_CLOSE_CODES[code]
        if code == 4011 and self.record.shard_count is not None:
            return f"{reason}; its shard_count ({self.record.shard_count}) is too low: raise or remove it"
        if code == 4011 and plan.sharded:
            return f"{reason}, even sharded as Discord recommended"
        return reason

    async def _retry_later(self, exc: BaseException) -> None:
        error = describe_connection_error(exc)
        _log.debug("Bot %d: the failure in full", self.client_id, exc_info=exc)
        await self._set_state(BotState.RECONNECTING, error=error)
        if self._identified:
            # The session got as far as an IDENTIFY: the pacer decides when the next one goes.
            self._cause = error
            _log.warning("Bot %r (%d) lost its session (%s); retrying on a new client",
                         self.name, self.client_id, error)  # fmt: skip
            return
        delay = self._login_backoff.next_delay()
        _log.warning("Bot %r (%d) could not connect (%s); retrying on a new client in %.1fs",
                     self.name, self.client_id, error, delay)  # fmt: skip
        await asyncio.sleep(delay)

    async def _wait_before_identify(self) -> None:
        """Wait out the pacer before a fresh client, with no socket open."""
        wait = self._pacer.delay()
        if wait > 0:
            await self._set_state(BotState.RECONNECTING, error=self._pacing_reason(wait))
            await asyncio.sleep(wait)

    def _pacing_reason(self, wait: float) -> str:
        """lastError while a crash loop is slowed down: what ended the session, and what happens."""
        length = self._pacer.last_session_length
        ended = "ended before READY" if length is None else f"ended {length:.1f}s after READY"
        cause = f"{self._cause}: " if self._cause else ""
        reason = (
            f"{cause}the gateway session {ended} ({self._pacer.short_sessions} in a row shorter than "
            f"BOT_STABLE_AFTER={self._settings.bot_stable_after:g}s); next IDENTIFY in {wait:.1f}s "
            "to spare the daily IDENTIFY budget"
        )
        _log.warning("Bot %r (%d): %s", self.name, self.client_id, reason)
        return reason

    async def _before_identify(self, shard_id: int | None, initial: bool) -> None:
        """Every IDENTIFY of this bot (of each shard), from either reconnect loop, passes here:
        pace it, then count it against the budget (from memory) and write it to the bot's log
        (batched with the other bots', bounded) before it is sent."""
        wait = self._pacer.delay(shard_id)
        if wait > HANDSHAKE_WAIT_MAX:
            raise IdentifyDeferred(wait)
        if wait > 0:
            if self._pacer.backing_off:  # not when only spaced (a sharded bot's launch)
                await self._set_state(self.state, error=self._pacing_reason(wait))
            await asyncio.sleep(wait)
        await self._ledger.claim()  # decided from memory, written (in a batch) before it is sent
        self._pacer.identified(shard_id)
        self._identified = True
        self._cause = None  # a new session: how the last one ended no longer applies

    # -- gateway events -----------------------------------------------------------------------

    async def _on_connect(self) -> None:
        """The gateway's READY, dispatched before discord.py waits for the guilds."""
        self._open_session()

    async def _on_shard_connect(self, shard_id: int) -> None:
        """One shard's READY: the session is open once every shard has had its own."""
        self._shards_opened.add(shard_id)
        client = self.client
        if client is not None and self._shards_opened >= set(range(client.shards_total)):
            self._open_session()

    def _open_session(self) -> None:
        if not self.session_opened:
            self.session_opened = True
            self._changed()  # the worker's paced starts give this bot's slot to the next

    async def _on_ready(self) -> None:
        # READY alone resets nothing: only a session that holds does (see `_watch_stability`).
        self._pacer.ready()
        self._index_guilds()
        await self._set_state(BotState.READY)
        client = self.client
        _log.info("Bot %r (%d) is ready in %d guild(s)", self.name, self.client_id,
                  len(client.guilds) if client else 0)  # fmt: skip
        self._watch_stability()
        self._guilds.wake()

    async def _on_resumed(self) -> None:
        client = self.client
        if client is not None and not client.all_shards_up:
            return  # one shard resumed; another is still away
        self._index_guilds()
        await self._set_state(BotState.READY)
        self._watch_stability()
        self._guilds.wake()

    async def _on_shard_ready(self, shard_id: int) -> None:
        """A shard got its READY and guilds: at launch (the bot's `on_ready` follows once every
        shard did) or after that shard alone identified again (no `on_ready` then)."""
        self._pacer.ready(shard_id)
        client = self.client
        if client is None or not client.is_ready() or not client.all_shards_up:
            return
        self._index_guilds()
        await self._set_state(BotState.READY)
        self._watch_stability()
        self._guilds.wake()

    async def _on_disconnect(self) -> None:
        self._session += 1
        if self._stability_task is not None:
            self._stability_task.cancel()
        if not self._stopping and self.state is BotState.READY:
            await self._set_state(BotState.RECONNECTING)

    def _watch_stability(self) -> None:
        if self._stability_task is not None:
            self._stability_task.cancel()
        self._stability_task = asyncio.create_task(
            self._hold(self._session), name=f"bot-{self.client_id}-stability"
        )

    async def _hold(self, session: int) -> None:
        """The session counts as stable once it lasted BOT_STABLE_AFTER with no disconnect."""
        await asyncio.sleep(self._settings.bot_stable_after)
        if session != self._session or self.state is not BotState.READY:
            return
        self._pacer.held()
        self._cause = None
        self.down_since = None
        if self.last_error is not None:
            _log.info("Bot %r (%d) has held its session for %gs; clearing its last error",
                      self.name, self.client_id, self._settings.bot_stable_after)  # fmt: skip
            self.last_error = None
            self._changed()
            async with self._state_changed:
                self._state_changed.notify_all()

    async def _on_guild_change(self, guild: discord.Guild) -> None:
        self._guilds.wake()

    def _index_guilds(self) -> None:
        """A session is (again) complete: its guild list is the truth for the fleet's index."""
        client = self.client
        if client is not None and not self._stopping:
            self._router.guilds.replace(self.client_id, (guild.id for guild in client.guilds))

    async def _on_guild_in(self, guild: discord.Guild) -> None:
        if not self._stopping:
            self._router.guilds.add(self.client_id, guild.id)

    async def _on_guild_out(self, guild: discord.Guild) -> None:
        self._router.guilds.remove(self.client_id, guild.id)


def _first_connection_failure(exc: Exception, client: discord.Client) -> BaseException:
    """The real reason when the first gateway connection failed.

    discord.py 2.7's reconnect loop, after a failed first handshake, reads `self.ws.sequence`
    while `ws` is still None: the AttributeError hides the failure it was handling (a 404 from
    a proxy, a refused connection), which is its `__context__`.
    """
    ws: object = client.ws
    if isinstance(exc, AttributeError) and ws is None and exc.__context__ is not None:
        return exc.__context__
    return exc
