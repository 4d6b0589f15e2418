"""The BotManager: the fleet's lifecycle, and which bot serves which guild."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import timedelta

import discord
from pymongo.errors import PyMongoError

from app.bots.client import MusicBotClient
from app.bots.events import FleetEvents
from app.bots.fleet_stop import stop_runners
from app.bots.identify import IdentifyLogBook
from app.bots.reload import FleetWatcher
from app.bots.router import FleetRouter
from app.bots.runner import BotRunner
from app.bots.startup import FleetStartFacts, StartFacts
from app.bots.status import BotState, BotStatus, stored_status
from app.db import queries
from app.db.models import MusicBot, utcnow
from app.music.config import parse_lavalink_nodes
from app.music.scheduler import MusicScheduler
from app.open_files import prepare_for_fleet
from app.settings import Settings
from app.tokens import TokenCipher, client_id_from_token, token_fingerprint

_log = logging.getLogger(__name__)


class BotManager:
    """Starts one supervised runner per enabled bot; one bot's failure never touches another."""

    def __init__(self, *, settings: Settings, cipher: TokenCipher) -> None:
        self._settings = settings
        self.cipher = cipher
        self._runners: dict[int, BotRunner] = {}
        # Stored but disabled: not run, still listed (an operator sees the whole fleet).
        self._disabled: dict[int, MusicBot] = {}
        # Bounded concurrency for logins: 100 bots starting must not be 100 simultaneous REST bursts.
        self._login_gate = asyncio.Semaphore(settings.bot_login_concurrency)
        self._identify_log = IdentifyLogBook()  # every bot's IDENTIFY log, written in batches
        self._locks: dict[int, asyncio.Lock] = {}
        self._background: set[asyncio.Task[bool]] = set()
        self._lavalink_nodes = parse_lavalink_nodes(settings.lavalink_nodes)
        self.router = FleetRouter(self, default_guild_cap=settings.bot_guild_cap)
        # One per worker: every bot's idle checks and snapshots, in one set of loops.
        self.scheduler = MusicScheduler(
            idle_timeout=settings.music_idle_timeout, snapshot_interval=settings.snapshot_interval
        )
        self._invite_sweeper: asyncio.Task[None] | None = None
        self.watcher = FleetWatcher(
            self, mode=settings.reload_mode, poll_interval=settings.reload_poll_interval
        )
        self.started_at = utcnow()
        self.events = FleetEvents()  # recent fleet events, for the dashboard

    async def initialize(self) -> None:
        """Start every enabled bot in the database (and the development bot, if configured)."""
        if self._settings.discord_token is not None:
            await self._ensure_development_bot(self._settings.discord_token.get_secret_value())
        if not self._lavalink_nodes:
            _log.warning(
                "LAVALINK_NODES is empty: music commands will answer that the audio backend is unavailable"
            )
        bots = await queries.get_active_music_bots()
        self._disabled = {bot.client_id: bot for bot in await queries.get_disabled_music_bots()}
        prepare_for_fleet(bots=len(bots), lavalink_nodes=len(self._lavalink_nodes))
        _log.info("Starting %d bot(s); %d disabled", len(bots), len(self._disabled))
        self.scheduler.start()
        facts = await FleetStartFacts.read(bots)  # what each bot's start would read for itself
        for bot in bots:
            await self.start_bot(bot, facts=facts.take(bot) if facts is not None else None)
        self._invite_sweeper = asyncio.create_task(self._sweep_invites(), name="invite-expiry")
        self.watcher.start()

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

    async def start_bot(self, bot: MusicBot, *, facts: StartFacts | None = None) -> BotRunner:
        """Start (or restart) one bot. Returns at once; the bot logs in in the background.
        `facts`: its share of what was read for the whole fleet at its start."""
        async with self._bot_lock(bot.client_id):
            return await self._start(bot, facts)

    async def _start(self, bot: MusicBot, facts: StartFacts | None = None) -> BotRunner:
        previous = self._runners.pop(bot.client_id, None)
        if previous is not None:
            await previous.stop()
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
            events=self.events,
            start_facts=facts,
            identify_log=self._identify_log,
        )
        self._runners[bot.client_id] = runner
        runner.start()
        return runner

    async def sync_bot(self, client_id: int, record: MusicBot | None) -> str:
        """Make one bot's running state match its record (None: deleted). Touches nothing else.

        Started when enabled and not running; stopped when disabled or deleted; restarted when
        its token, name or shard count changed. Other changes (counts, limits) need no restart. A failed bot
        is only retried when its record changes what failed (the token). Returns the action.
        """
        async with self._bot_lock(client_id):
            return await self._sync(client_id, record)

    async def sync_bot_from_database(self, client_id: int) -> str:
        """`sync_bot` with the record read under the bot's lock: what the hot-reload watcher
        uses, so a change made through the API while it was busy (a delete, a disable) is never
        undone by an older read of the collection."""
        async with self._bot_lock(client_id):
            return await self._sync(client_id, await queries.get_music_bot_by_client_id(client_id))

    async def _sync(self, client_id: int, record: MusicBot | None) -> str:
        runner = self._runners.get(client_id)
        if record is not None and not record.enabled:
            self._disabled[client_id] = record  # listed, never started
        else:
            self._disabled.pop(client_id, None)
        if record is None or not record.enabled:
            if runner is None:
                return "none"
            await self._stop(client_id)
            await self._forget_players(client_id)
            return "stopped"
        if runner is None:
            await self._start(record)
            _log.info("Bot %r (%d) started", record.name, client_id)
            return "started"
        old = runner.record
        if (
            old.token_fingerprint != record.token_fingerprint
            or old.name != record.name
            or old.shard_count != record.shard_count  # a client's shards are fixed when it connects
        ):
            await self._start(record)
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
        for runner in list(self._runners.values()):
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

    async def stop_bot(self, client_id: int) -> bool:
        async with self._bot_lock(client_id):
            return await self._stop(client_id)

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
        except PyMongoError as exc:
            _log.warning("Bot %d: its saved players were not forgotten (%s)", client_id, exc)
            return
        if forgotten:
            _log.info("Bot %d: forgot %d saved player(s): it was disabled or deleted", client_id, forgotten)

    @property
    def settings(self) -> Settings:
        return self._settings

    def client_ids(self) -> frozenset[int]:
        """Every bot of the fleet (used to tell our bots from listeners in voice channels)."""
        return frozenset(self._runners)

    def known_client_ids(self) -> frozenset[int]:
        """Every bot the manager knows of: running or disabled."""
        return frozenset(self._runners) | frozenset(self._disabled)

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

    def state_counts(self) -> Counter[BotState]:
        """How many bots are in each state: what /health needs, without building snapshots."""
        return Counter(runner.state for runner in self._runners.values())

    def bots_down_longer_than(self, seconds: float) -> int:
        """How many bots have been starting or reconnecting, without a session that held, for
        longer than `seconds`."""
        now = time.monotonic()
        return sum(1 for runner in self._runners.values() if runner.down_for(now) > seconds)

    def lavalink_nodes(self) -> tuple[int, int]:
        """(connected, total) Lavalink nodes over every running bot (each bot has its own)."""
        counts = [runner.lavalink_nodes() for runner in self._runners.values()]
        return sum(c for c, _ in counts), sum(t for _, t in counts)

    def statuses(self) -> list[BotStatus]:
        """Every running bot, then every disabled one (status `disabled`)."""
        running = [runner.status() for runner in self._runners.values()]
        return running + [
            stored_status(bot, BotState.DISABLED)
            for bot in self._disabled.values()
            if bot.client_id not in self._runners
        ]

    def state_of(self, client_id: int) -> BotState | None:
        """One bot's state without building its status (None: not known here)."""
        runner = self._runners.get(client_id)
        if runner is not None:
            return runner.state
        return BotState.DISABLED if client_id in self._disabled else None

    def status_of(self, client_id: int) -> BotStatus | None:
        """One bot's status, as `statuses()` lists it (None: not known here)."""
        runner = self._runners.get(client_id)
        if runner is not None:
            return runner.status()
        bot = self._disabled.get(client_id)
        return stored_status(bot, BotState.DISABLED) if bot is not None else None

    async def shutdown(self) -> None:
        await self.watcher.stop()
        if self._invite_sweeper is not None:
            self._invite_sweeper.cancel()
            await asyncio.gather(self._invite_sweeper, return_exceptions=True)
        runners, self._runners = list(self._runners.values()), {}
        if runners:
            _log.info("Stopping %d bot(s)", len(runners))
        # Paced and bounded: one batched save of every player, a few closes at a time, a deadline.
        await stop_runners(runners, deadline=self._settings.shutdown_timeout)
        await self._identify_log.close(timeout=5.0)  # queued after the stop's write, if any
        await self.scheduler.stop()

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
