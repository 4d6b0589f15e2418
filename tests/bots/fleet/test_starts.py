"""The start pacer: a worker with many bots to start keeps only a few starting at once, each
until its gateway session is open (not through discord.py's wait for guilds after READY)."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.fleet.starts import START_CONCURRENCY, StartPacer
from app.bots.status import BotState
from app.settings import Settings
from tests.bots.fleet.workers import until
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

WAIT = 30.0
# States in which a start no longer needs its slot ("opened": READY received, guilds awaited).
_DONE = frozenset({"opened", "ready", "failed", "stopped"})


class Host:
    """The part of `BotHost` the pacer uses: bots it starts stay "starting" until told."""

    def __init__(self) -> None:
        self.states: dict[int, str] = {}
        self.started: list[int] = []
        self.pacer: StartPacer | None = None
        self.refuse: set[int] = set()

    async def run_bot(self, client_id: int, epoch: int) -> bool:
        await asyncio.sleep(0)
        if client_id in self.refuse:
            return False
        self.started.append(client_id)
        self.states[client_id] = "starting"
        return True

    def start_done(self, client_id: int) -> bool:
        state = self.states.get(client_id)
        return state is None or state in _DONE

    def settle(self, client_id: int, state: str = "ready") -> None:
        self.states[client_id] = state
        assert self.pacer is not None
        self.pacer.status_changed(client_id)

    def starting(self) -> int:
        return sum(1 for state in self.states.values() if state == "starting")


async def test_starts_are_paced_and_each_slot_waits_for_its_bot_to_settle() -> None:
    host = Host()
    held = {client_id: 1 for client_id in range(10)}
    refused: list[int] = []

    async def give_back(client_id: int) -> None:
        refused.append(client_id)

    pacer = StartPacer(
        host=host,  # type: ignore[arg-type]  # a stand-in for the manager
        still_held=lambda client_id, epoch: held.get(client_id) == epoch,
        refused=give_back,
        concurrency=3,
    )
    host.pacer = pacer
    try:
        await pacer.begin(0, 1)  # a free slot: started before `begin` returns
        assert host.started == [0]
        for client_id in range(1, 10):
            await pacer.begin(client_id, 1)
        await until(lambda: len(host.started) == 3, what="three starts")
        assert host.starting() == 3 and pacer.queued() == 7
        del held[5]  # lost meanwhile: skipped, never started
        host.refuse.add(6)  # disabled meanwhile: its lease goes back
        while running := [c for c, state in host.states.items() if state == "starting"]:
            host.settle(running[0], {2: "failed", 3: "opened"}.get(running[0], "ready"))
            # The slot passes to the next queued bot (skipped and refused ones take none).
            await until(lambda: host.starting() == 3 or pacer.queued() == 0, what="the next start")
            assert host.starting() <= 3
        await until(lambda: not any(pacer.pending(c) for c in range(10)), what="every start to settle")
        assert sorted(host.started) == [0, 1, 2, 3, 4, 7, 8, 9]
        assert refused == [6]
    finally:
        await pacer.stop()


async def test_a_start_that_never_settles_gives_its_slot_up() -> None:
    host = Host()

    pacer = _one_slot_pacer(host, settle_seconds=0.05)
    host.pacer = pacer
    try:
        await pacer.begin(1, 1)
        await pacer.begin(2, 1)
        assert host.started == [1]
        await until(lambda: host.started == [1, 2], what="the second start after the first timed out")
        assert pacer.gave_up >= 1
    finally:
        await pacer.stop()


async def test_a_slot_passes_on_when_the_session_opens_not_when_the_bot_is_ready() -> None:
    """READY received ("opened") ends a start's costly part: the next bot starts while the first
    is still waiting for its guilds, not yet ready."""
    host = Host()

    pacer = _one_slot_pacer(host, settle_seconds=WAIT * 10)  # never the reason a slot passes on here
    host.pacer = pacer
    try:
        await pacer.begin(1, 1)
        await pacer.begin(2, 1)
        assert host.started == [1] and pacer.queued() == 1
        host.settle(1, "opened")
        await until(lambda: host.started == [1, 2], what="the second start once the first opened its session")
        assert host.states[1] == "opened" and not pacer.pending(1)
    finally:
        await pacer.stop()


async def test_more_bots_than_slots_all_open_their_sessions_during_the_wait_for_guilds(
    fake_discord: FakeDiscord,
    make_settings: Any,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    """The real worker: more bots than START_CONCURRENCY, and a wait for guilds after READY
    (GUILD_READY_TIMEOUT) far longer than the test. Every bot still gets its gateway session
    while none is ready yet: each slot passed on at READY. (Before, a slot was held until the
    bot was ready, so the bots past the first START_CONCURRENCY waited for the first ones'
    wait for guilds: about 14 starts/s with the default 2 s, and a takeover of 500 bots took 42 s.)"""
    settings: Settings = make_settings(
        discord_api_base=fake_discord.api_base,
        discord_gateway_url=fake_discord.gateway_url,
        identify_interval=0.0,
        guild_ready_timeout=600.0,
    )
    bots = [fake_discord.add_bot(name=f"Paced {n}") for n in range(START_CONCURRENCY + 8)]
    for bot in bots:
        await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        manager = running.manager

        def opened() -> bool:
            runners = [manager.get_runner(bot.client_id) for bot in bots]
            return all(runner is not None and runner.session_opened for runner in runners)

        await until(opened, what="every bot's gateway session", timeout=WAIT * 3)
        runners = [manager.get_runner(bot.client_id) for bot in bots]
        assert all(runner is not None and runner.state is BotState.STARTING for runner in runners)
        assert all(fake_discord.is_connected(bot) for bot in bots)
        pacer = manager.fleet.pacer
        assert pacer.queued() == 0
        assert pacer.gave_up == 0, "slots passed on only when START_SETTLE_SECONDS ran out"


def _one_slot_pacer(host: Host, *, settle_seconds: float) -> StartPacer:
    """One start at a time, every lease held, nothing ever refused."""

    async def give_back(client_id: int) -> None:
        raise AssertionError("nothing is refused")

    return StartPacer(
        host=host,  # type: ignore[arg-type]
        still_held=lambda client_id, epoch: True,
        refused=give_back,
        concurrency=1,
        settle_seconds=settle_seconds,
    )
