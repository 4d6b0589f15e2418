"""The BotManager: runs the bots whose leases this worker holds, and answers for the whole fleet.

Which bots this worker runs is the fleet's decision (`app.bots.fleet`: leases in MongoDB, spread
over every `chorus serve` on the same database); the manager is the `BotHost` that starts and
stops them. A single process is a fleet of one worker and takes the same path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import discord
from discord.ext import tasks
from pymongo.errors import PyMongoError

from app.bots import overview
from app.bots.client import MusicBotClient
from app.bots.events import FleetEvents
from app.bots.fleet.coordinator import FleetCoordinator
from app.bots.fleet_stop import save_players, stop_runners
from app.bots.forwarding import Forwarder
from app.bots.guild_sync import GUILD_WRITES_AT_ONCE
from app.bots.identify import IdentifyLogBook
from app.bots.reload import FleetWatcher
from app.bots.router import FleetRouter
from app.bots.runner import BotRunner
from app.bots.startup import StartFacts, StartFactsLoader
from app.bots.status import BotState, BotStatus
from app.db import leases as lease_db
from app.db import queries
from app.db import routing as routing_db
from app.db.connection import interactive
from app.db.leases import FleetCollections
from app.db.models import LeaseStatus, MusicBot, utcnow
from app.heap import HeapKeeper
from app.music.config import parse_lavalink_nodes
from app.music.scheduler import MusicScheduler
from app.open_files import prepare_for_fleet
from app.settings import Settings
from app.shutdown import cancel_bounded
from app.tokens import TokenCipher, client_id_from_token, token_fingerprint

_log = logging.getLogger(__name__)

HEAP_CHECK_INTERVAL = 10.0  # seconds between two looks at whether the heap should be settled

# The worker heartbeat (every LEASE_TTL / 5) carries how many of this worker's Lavalink
# connections are up, for the other workers' /health. Counting them visits every bot (at 1,000
# bots, a few milliseconds each beat, the largest periodic cost of an idle worker of ours): it is
# counted at most this often. This worker's own /health counts live.
LAVALINK_SUMMARY_EVERY = 15.0


class BotManager:
    """One supervised runner per bot this worker holds; one bot's failure never touches another."""

    def __init__(
        self, *, settings: Settings, cipher: TokenCipher, coordination: FleetCollections | None = None
    ) -> None:
        self._settings = settings
        self.cipher = cipher
        # Every stored bot (enabled or not), as the hot-reload watcher last read it.
        self._records: dict[int, MusicBot] = {}
        self._runners: dict[int, BotRunner] = {}
        # Runners being stopped because their lease was lost: a new start of the bot waits for it.
        self._dropping: dict[int, asyncio.Task[None]] = {}
        # Bounded concurrency for logins: 100 bots starting must not be 100 simultaneous REST bursts.
        self._login_gate = asyncio.Semaphore(settings.bot_login_concurrency)
        self._identify_log = IdentifyLogBook()  # every bot's IDENTIFY log, written in batches
        self._guild_writers = asyncio.Semaphore(GUILD_WRITES_AT_ONCE)  # the bots' guild syncs
        self._drain_deadline = 0.0  # monotonic: when the drain must be over (set at the shutdown)
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[bool]] = set()
        self._rechecks: set[asyncio.Task[None]] = set()
        self._lavalink_nodes = parse_lavalink_nodes(settings.lavalink_nodes)
        self._lavalink_summary: tuple[float, tuple[int, int]] | None = None  # (when, counts)
        self.router = FleetRouter(self, default_guild_cap=settings.bot_guild_cap)
        self.forwarder = Forwarder(self)
        # One per worker: every bot's idle checks and snapshots, in one set of loops (they
        # visit only the bots this worker runs: a bot is added when its music starts here).
        self.scheduler = MusicScheduler(
            idle_timeout=settings.music_idle_timeout, snapshot_interval=settings.snapshot_interval
        )
        self._invite_sweeper: asyncio.Task[None] | None = None
        self.watcher = FleetWatcher(
            self, mode=settings.reload_mode, poll_interval=settings.reload_poll_interval
        )
        self.fleet = FleetCoordinator(host=self, settings=settings, coordination=coordination)
        # What each bot's start would read, read in batches for the bots whose leases arrived.
        self._start_facts = StartFactsLoader(self.fleet.awaiting_start, self.record)
        self.started_at = utcnow()
        self.events = FleetEvents()  # recent fleet events, for the dashboard
        # Once the bots have stopped changing, their long-lived objects are frozen out of the
        # garbage collector's full collections (app/heap.py).
        self.heap = HeapKeeper()
        self._heap_loop = tasks.loop(seconds=HEAP_CHECK_INTERVAL, name="heap-keeper")(self._check_heap)

    async def initialize(self) -> None:
        """Join the fleet and start this worker's share of the enabled bots at once (all of them
        in a fleet of one); then follow `music_bots`, `workers` and `bot_leases`."""
        if self._settings.discord_token is not None:
            await self._ensure_development_bot(self._settings.discord_token.get_secret_value())
        if not self._lavalink_nodes:
            _log.warning(
                "LAVALINK_NODES is empty: music commands will answer that the audio backend is unavailable"
            )
        self._records = {bot.client_id: bot for bot in await queries.get_all_music_bots()}
        enabled = len(self.wanted())
        capacity = self._settings.worker_capacity
        # The most bots this worker may come to run: all of them in a fleet of one.
        prepare_for_fleet(
            bots=min(enabled, capacity) if capacity is not None else enabled,
            lavalink_nodes=len(self._lavalink_nodes),
        )
        self.scheduler.start()
        await self.fleet.start()
        _log.info("Worker %s runs %d of the fleet's %d enabled bot(s)",
                  self.fleet.me, len(self._runners), enabled)  # fmt: skip
        self._invite_sweeper = asyncio.create_task(self._sweep_invites(), name="invite-expiry")
        self.watcher.start()
        self._heap_loop.start()

    async def _check_heap(self) -> None:
        # What changes when a bot starts, stops or gets a new client (a restart).
        state = frozenset((client_id, id(runner.client)) for client_id, runner in self._runners.items())
        self.heap.check(state)

    async def _sweep_invites(self) -> None:
        expiry = timedelta(seconds=self._settings.invite_expiry_seconds)
        interval = min(60.0, max(0.05, self._settings.invite_expiry_seconds / 4))
        while True:
            try:
                await self.router.expire_invites(expiry)
            except PyMongoError as exc:
                _log.warning("Expiring pending invites failed (%s); will retry", exc)
            await asyncio.sleep(interval)

    def _bot_lock(self, client_id: int) -> asyncio.Lock:
        """One lock per bot: decisions about a bot and their effect are atomic (the admin API
        and the hot-reload watcher may act on the same change), while other bots never wait."""
        return self._locks.setdefault(client_id, asyncio.Lock())

    async def restart_bot(self, client_id: int) -> str:
        """A fresh client for the bot, with its record read again (per-bot limits apply when a
        bot starts; also retries a failed one): here if this worker runs it, else by asking its
        owner through its lease. Returns "restarted", "requested" or "none" (no such bot)."""
        with interactive():
            record = await queries.get_music_bot_by_client_id(client_id)
        if record is None or not record.enabled:
            return "none"
        if await self._restart_here(record):
            return "restarted"
        with interactive():
            await lease_db.request_restart(client_id)
        return "requested"

    async def restart_here(self, client_id: int) -> None:
        """BotHost: the owner's side of a restart asked for on another worker."""
        record = self._records.get(client_id)
        try:
            with interactive():  # a hung database must not hold the restart up
                record = await queries.get_music_bot_by_client_id(client_id) or record
        except PyMongoError as exc:
            _log.warning("Bot %d: restarting with the record known here (%s)", client_id, exc)
        if record is not None and record.enabled:
            await self._restart_here(record)

    async def _restart_here(self, record: MusicBot) -> bool:
        async with self._bot_lock(record.client_id):
            self._records[record.client_id] = record
            runner = self._runners.get(record.client_id)
            if runner is None:
                return False
            await self._start(record, runner.epoch)
            return True

    async def _start(self, bot: MusicBot, epoch: int, facts: StartFacts | None = None) -> BotRunner | None:
        """A new runner under the lease of `epoch` (the previous one stopped first). None: this
        worker may not run bots right now (its renew deadline passed while the previous runner
        was stopping, or it drains): checked after the last await, so a stop of every bot at the
        deadline can never miss a runner started meanwhile. `facts`: what its start would read,
        read in a batch with the other bots starting here (None: it reads its own)."""
        dropping = self._dropping.get(bot.client_id)
        if dropping is not None:  # the old session must be gone before a new one identifies
            await asyncio.wait({dropping})
        previous = self._runners.pop(bot.client_id, None)
        if previous is not None:
            await previous.stop()
        if not self.fleet.may_run(bot.client_id, epoch):
            return None
        runner = BotRunner(
            bot,
            settings=self._settings,
            cipher=self.cipher,
            login_gate=self._login_gate,
            lavalink_nodes=self._lavalink_nodes,
            router=self.router,
            scheduler=self.scheduler,
            manager=self,
            on_failed=self._bot_failed,
            epoch=epoch,
            on_change=self.fleet.status_changed,
            events=self.events,
            start_facts=facts,
            identify_log=self._identify_log,
            guild_writers=self._guild_writers,
        )
        self._runners[bot.client_id] = runner
        runner.start()
        self.fleet.status_changed(bot.client_id)
        return runner

    # -- BotHost: what the fleet's coordinator asks of this process ----------------------------------

    def wanted(self) -> list[int]:
        return [client_id for client_id, record in self._records.items() if record.enabled]

    def known(self) -> Collection[int]:
        return self._records.keys()

    def running(self) -> list[int]:
        return list(self._runners)

    def idle(self) -> list[int]:
        return [
            client_id
            for client_id, runner in self._runners.items()
            if runner.client is None or not runner.client.music.players()
        ]

    async def run_bot(self, client_id: int, epoch: int) -> bool:
        async with self._bot_lock(client_id):
            record = self._records.get(client_id)
            if record is None or not record.enabled:
                return False
            if not self.fleet.may_run():
                return True  # the lease stays; the bot starts once the heartbeat is current
            runner = self._runners.get(client_id)
            if runner is None or runner.epoch != epoch:
                facts = await self._start_facts.take(record, epoch)  # in a batch with the others'
                await self._start(record, epoch, facts)
            return True

    async def hand_over(self, client_id: int) -> bool:
        async with self._bot_lock(client_id):
            runner = self._runners.pop(client_id, None)
            if runner is None:
                dropping = self._dropping.get(client_id)
                if dropping is not None:
                    await asyncio.wait({dropping})
                return True
            await runner.stop()
            _log.info("Bot %r (%d) stopped for a hand-over", runner.name, client_id)
            return runner.gateway_closed()

    async def identifies_written(self, client_ids: Collection[int]) -> None:
        # Their IDENTIFYs in their logs before the leases go: the next owner reads a bot's log
        # before its first IDENTIFY of the bot, and must count them. One bounded wait for all.
        late = await self._identify_log.all_written(client_ids)
        if late:
            _log.warning("%d bot(s) (%s) handed over before their last IDENTIFY was in their log; "
                         "their next owners may under-count their daily budget by one",
                         len(late), ", ".join(str(client_id) for client_id in late[:20]))  # fmt: skip

    async def save_players(self, client_ids: Collection[int], *, timeout: float) -> None:
        runners = [runner for client_id in client_ids if (runner := self._runners.get(client_id))]
        if runners:
            await save_players(runners, timeout=timeout)

    async def close_bots(self, client_ids: Collection[int], *, deadline: float, save: bool) -> None:
        """The drain's paced stop of the bots not handed over (leases kept): the one stop path."""
        runners = [runner for client_id in client_ids if (runner := self._runners.pop(client_id, None))]
        await stop_runners(runners, deadline=deadline, abandon=not save)

    async def drop_bot(self, client_id: int) -> None:
        """No lock: this must not wait behind anything (the renew deadline is running out)."""
        runner = self._runners.pop(client_id, None)
        if runner is None:
            dropping = self._dropping.get(client_id)
            if dropping is not None:
                await asyncio.wait({dropping})
            return
        task = asyncio.create_task(runner.stop(abandon=True), name=f"drop-{client_id}")
        self._dropping[client_id] = task
        try:
            await asyncio.wait({task})
        finally:
            if self._dropping.get(client_id) is task:
                del self._dropping[client_id]
        _log.warning("Bot %r (%d) stopped: this worker may not run it any more", runner.name, client_id)

    def lease_fenced(self, client_id: int) -> None:
        """A fenced write of the bot was refused: check its lease (in the background)."""
        task = asyncio.create_task(self.fleet.recheck(client_id), name=f"recheck-lease-{client_id}")
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    def can_take_interaction(self, client_id: int) -> bool:
        return self.forwarder.can_take(client_id)

    def take_interaction(
        self, client_id: int, payload: dict[str, Any], *, deferred: bool, public_defer: bool
    ) -> None:
        self.forwarder.take(client_id, payload, deferred=deferred, public_defer=public_defer)

    def summary(self) -> tuple[int, tuple[int, int]]:
        """What the worker heartbeat publishes: the bots running here and (connected, total)
        Lavalink nodes, counted at most every `LAVALINK_SUMMARY_EVERY`."""
        now = time.monotonic()
        counted = self._lavalink_summary
        if counted is None or now - counted[0] >= LAVALINK_SUMMARY_EVERY:
            counted = self._lavalink_summary = (now, self.local_lavalink_nodes())
        return len(self._runners), counted[1]

    def start_done(self, client_id: int) -> bool:
        runner = self._runners.get(client_id)
        return runner is None or runner.start_done()

    def lease_status(self, client_id: int) -> LeaseStatus | None:
        runner = self._runners.get(client_id)
        if runner is None:
            return None
        status = runner.status()
        return LeaseStatus(
            state=status.state.value,
            since=status.since,
            guilds=status.guilds,
            users=status.users,
            latency_ms=status.latency_ms,
            last_error=status.last_error,
            identifies_24h=status.identifies_24h,
            stuck=runner.down_for() > self._settings.health_reconnect_threshold,
            shards=status.shards,
        )

    async def sync_bot(self, client_id: int, record: MusicBot | None) -> str:
        """Make the fleet follow one bot's record (None: deleted) at once. Touches nothing else.

        Stopped (by this worker, if it runs it) when disabled or deleted; restarted when its
        token, name or shard count changed. An enabled bot nobody runs yet is claimed in a balancing round
        run now: in a fleet of one (or when this worker is below its share) it starts here at
        once, else its new owner starts it. A failed bot is only retried when its record changes
        what failed (the token). Returns the action: started, restarted, stopped, pending, none.
        """
        async with self._bot_lock(client_id):
            action = await self._sync(client_id, record)
        if action == "pending":
            await self.fleet.balance_now()
            return "started" if client_id in self._runners else "pending"
        if action != "none":
            self.fleet.wake()  # a lease to create, free or remove: a settled balancer waits long
        return action

    async def sync_bot_from_database(self, client_id: int) -> str:
        """`sync_bot` with the record read under the bot's lock: what the hot-reload watcher
        uses, so a change made through the API while it was busy (a delete, a disable) is never
        undone by an older read of the collection. Any change wakes the balancer (a bot to claim,
        a lease to remove)."""
        async with self._bot_lock(client_id):
            action = await self._sync(client_id, await queries.get_music_bot_by_client_id(client_id))
        if action != "none":
            self.fleet.wake()
        return action

    async def _sync(self, client_id: int, record: MusicBot | None) -> str:
        if record is None:
            self._records.pop(client_id, None)
        else:
            self._records[client_id] = record
        runner = self._runners.get(client_id)
        if record is None or not record.enabled:
            if runner is not None:
                await self._stop(client_id)
            if runner is not None or self.fleet.holds(client_id):
                await self._forget_players(client_id)
            await self.fleet.give_up(client_id, deleted=record is None)
            return "stopped" if runner is not None else "none"
        if runner is None:
            return "pending" if not self.fleet.holds(client_id) else "none"
        old = runner.record
        if (
            old.token_fingerprint != record.token_fingerprint
            or old.name != record.name
            or old.shard_count != record.shard_count  # a client's shards are fixed when it connects
        ):
            await self._start(record, runner.epoch)
            _log.info("Bot %r (%d) restarted: its token, name or shard count changed", record.name, client_id)
            return "restarted"
        runner.record = record
        return "none"

    def _bot_failed(self, runner: BotRunner, reason: str) -> None:
        if runner.record.owner_id is not None:
            task = asyncio.create_task(
                self._notify_owner(runner, reason), name=f"notify-owner-{runner.client_id}"
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _notify_owner(self, failed: BotRunner, reason: str) -> bool:
        """DM the bot's owner why it stopped, through another ready bot (the failed one may have
        no valid token left). Returns whether a DM was delivered."""
        owner_id = failed.record.owner_id
        assert owner_id is not None
        message = (
            f"Your music bot **{failed.name}** has stopped: {reason}.\n"
            "If you reset its token, clone it again with the new token."
        )
        for runner in list(self._runners.values()):  # the bots of this worker
            client = runner.client
            if runner is failed or runner.state is not BotState.READY or client is None:
                continue
            try:
                user = await client.fetch_user(owner_id)
                await user.send(message)
            except discord.HTTPException as exc:
                _log.info(
                    "Bot %d could not DM owner %d (%s); trying another bot", runner.client_id, owner_id, exc
                )
                continue
            _log.info("Told owner %d that bot %d failed", owner_id, failed.client_id)
            return True
        _log.warning(
            "Could not tell owner %d that bot %d failed: no bot could DM them", owner_id, failed.client_id
        )
        return False

    async def _stop(self, client_id: int) -> bool:
        runner = self._runners.pop(client_id, None)
        if runner is None:
            return False
        await runner.stop()
        _log.info("Bot %r (%d) stopped", runner.name, client_id)
        return True

    async def _forget_players(self, client_id: int) -> None:
        """A disabled or deleted bot resumes nothing if it comes back (its stop just saved its
        players, as every stop does). A restart or a shutdown keeps them: they resume."""
        try:
            forgotten = await queries.forget_player_snapshots(client_id)
            await routing_db.forget_voice(client_id)  # its players left; nothing is assigned to it
        except PyMongoError as exc:
            _log.warning("Bot %d: its saved players were not forgotten (%s)", client_id, exc)
            return
        if forgotten:
            _log.info("Bot %d: forgot %d saved player(s): it was disabled or deleted", client_id, forgotten)

    @property
    def settings(self) -> Settings:
        return self._settings

    def client_ids(self) -> frozenset[int]:
        """Every bot of the network, whichever worker runs it (used to tell our bots from
        listeners in voice channels)."""
        return frozenset(self._records) | frozenset(self._runners)

    def record(self, client_id: int) -> MusicBot | None:
        return self._records.get(client_id)

    def fleet_bot_ids(self) -> list[int]:
        """Every stored bot (oldest first), then any bot running here without a record."""
        return [*self._records, *(c for c in self._runners if c not in self._records)]

    def disabled_count(self) -> int:
        """Stored bots with `enabled: false` that no runner of this worker runs."""
        records = self._records.items()
        return sum(1 for client_id, record in records if not (record.enabled or client_id in self._runners))

    def known_client_ids(self) -> frozenset[int]:
        """Every bot the manager knows of: stored (enabled or disabled) or running here."""
        return frozenset(self._records) | frozenset(self._runners)

    def get_runner(self, client_id: int) -> BotRunner | None:
        return self._runners.get(client_id)

    @property
    def runners(self) -> list[BotRunner]:
        return list(self._runners.values())

    def get_bot_for_guild(self, guild_id: int) -> MusicBotClient | None:
        """A ready bot of ours that is in the guild: the one serving the fewest guilds."""
        runners = (self._runners.get(client_id) for client_id in self.router.guilds.bots_in(guild_id))
        candidates = [
            runner.client
            for runner in runners
            if runner is not None
            and runner.state is BotState.READY
            and runner.client is not None
            and runner.client.get_guild(guild_id)
        ]
        return min(candidates, key=lambda client: len(client.guilds), default=None)

    def local_lavalink_nodes(self) -> tuple[int, int]:
        """(connected, total) Lavalink nodes over the bots running here (each bot has its own)."""
        counts = [runner.lavalink_nodes() for runner in self._runners.values()]
        return sum(c for c, _ in counts), sum(t for _, t in counts)

    def lavalink_nodes(self) -> tuple[int, int]:
        """(connected, total) Lavalink nodes over the whole fleet: this worker's live, the
        others' as their last heartbeat said."""
        local, remote = self.local_lavalink_nodes(), self.fleet.lavalink_nodes()
        return local[0] + remote[0], local[1] + remote[1]

    def status_of(self, client_id: int) -> BotStatus | None:
        """One bot's status wherever it runs (None: not a bot of the fleet, or disabled)."""
        return overview.bot_status(self, client_id)

    def statuses(self) -> list[BotStatus]:
        """Every bot of the fleet with the worker that runs it: the enabled ones (and any bot
        running here) oldest first, then the disabled ones (status `disabled`)."""
        return overview.fleet_statuses(self)

    def state_counts(self) -> Counter[BotState]:
        """How many enabled bots of the fleet are in each state."""
        states = (overview.bot_state(self, client_id) for client_id in self.fleet_bot_ids())
        return Counter(state for state in states if state is not None and state is not BotState.DISABLED)

    def health(self) -> overview.FleetHealth:
        return overview.fleet_health(self)

    def state_of(self, client_id: int) -> BotState | None:
        """One bot's state wherever it runs, without building its status (None: not a bot of
        the fleet)."""
        return overview.bot_state(self, client_id)

    async def shutdown(self) -> None:
        """Drain: hand every bot over (save, leave voice, close, release the lease at once) so
        the other workers take them at once, then leave the fleet; the bots not handed over are
        stopped by the paced stop. All of it within SHUTDOWN_TIMEOUT."""
        self._drain_deadline = time.monotonic() + self._settings.shutdown_timeout
        self._heap_loop.cancel()
        # The watcher is cancelled at once (no change applies from here on); the wait for its
        # change-stream read to give up (up to 1 s) overlaps the drain instead of delaying it.
        watcher_stopped = asyncio.create_task(self.watcher.stop(), name="fleet-watcher-stop")
        await asyncio.sleep(0)
        await cancel_bounded([self._invite_sweeper], 2.0, what="The invite sweeper")
        if self._runners:
            _log.info("Stopping %d bot(s)", len(self._runners))
        await self.fleet.drain()
        runners, self._runners = list(self._runners.values()), {}
        if runners:  # a start that raced the drain: the same paced stop, in what time is left
            await stop_runners(runners, deadline=max(1.0, self._drain_deadline - time.monotonic()))
        await watcher_stopped
        await self._identify_log.close(timeout=5.0)  # queued after the stop's write, if any
        await self.scheduler.stop()
        self.heap.release()  # last: unfrozen earlier, the drain could pay a full collection

    async def _ensure_development_bot(self, token: str) -> None:
        """DISCORD_TOKEN: store (encrypted) the single development bot if it is not stored yet."""
        client_id = client_id_from_token(token)
        fingerprint = token_fingerprint(token)
        existing = await queries.get_music_bot_by_client_id(client_id)
        if existing is None:
            await MusicBot(
                name=f"Development bot {client_id}",
                client_id=client_id,
                token_ciphertext=self.cipher.encrypt(token),
                token_fingerprint=fingerprint,
            ).insert()
            _log.info("Stored the development bot %d from DISCORD_TOKEN", client_id)
        elif existing.token_fingerprint != fingerprint or not existing.enabled:
            existing.token_ciphertext = self.cipher.encrypt(token)
            existing.token_fingerprint = fingerprint
            existing.enabled = True
            existing.updated_at = utcnow()
            await existing.save()
            _log.info("Updated the development bot %d from DISCORD_TOKEN", client_id)
