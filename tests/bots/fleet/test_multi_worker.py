"""Several real `chorus serve` workers on one database are one fleet, through every kind of churn.

Three workers start at once, a fourth joins, one is SIGTERMed, one SIGKILLed, the database stops
for 10 s. After each step every enabled bot is ready exactly once (one live gateway session in
the fake Discord, one `worker` in every worker's `/bots`), the bots are spread within one, and
the bots that were playing play on at their position (within a snapshot interval). The fake
Discord remembers the most sessions any bot ever had open at once: it must stay 1 throughout.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.db.models import PlayerSnapshot, utcnow
from tests.bots.fleet.workers import Stage, Worker, eventually, fleet_stage
from tests.fakes.discord import FakeBot, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.lavalink import FakePlayer

LEASE_TTL = 6.0  # renew deadline 4 s, heartbeat every 1.2 s
SNAPSHOT_INTERVAL = 2.0
# A resumed position may be this far behind the one at the step: one snapshot interval, plus
# the fake Lavalink's 1 s clock tick and the update that carries it.
POSITION_SLACK_MS = int(SNAPSHOT_INTERVAL * 1000) + 1500
SETTLE = 120.0  # generous: a loaded 2-core machine runs five Python servers here
OUTAGE = 10.0  # seconds the database stays down in the last step
ADMIN_TOKEN = "multi-worker-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Playing:
    bot: FakeBot
    guild: FakeGuild
    user: FakeUser
    title: str


@dataclass
class World(Stage):
    playing: list[Playing]  # the bots that play, each in a guild of its own


@pytest.fixture
async def world(tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any) -> AsyncIterator[World]:
    env = {
        "LEASE_TTL": str(LEASE_TTL),
        "SNAPSHOT_INTERVAL": str(SNAPSHOT_INTERVAL),
        "LAVALINK_RECONNECT_MAX_DELAY": "1",
        "ADMIN_API_TOKEN": ADMIN_TOKEN,
    }
    async with fleet_stage(tmp_path, fake_discord, make_settings, bots=6, tracks=3, env=env) as stage:
        playing: list[Playing] = []
        for n, bot in enumerate(stage.bots[:2], 1):  # each plays in a guild of its own
            guild = fake_discord.add_guild(member_count=5)
            await fake_discord.add_bot_to_guild(bot, guild.id)
            user = fake_discord.add_user(name=f"Listener {n}")
            fake_discord.add_member(guild.id, user)
            await fake_discord.set_user_voice(guild.id, user.id, guild.voice_channel_id, user=user)
            playing.append(Playing(bot, guild, user, f"Song {n}"))
        yield World(**vars(stage), playing=playing)


async def settled(world: World, workers: int) -> dict[str, int]:
    """Every bot ready exactly once, spread within one over `workers` live workers, and every
    live worker describing the same fleet. Returns bots per worker."""
    discord, bots = world.discord, world.bots
    await eventually(lambda: all(discord.live_sessions(bot) == 1 for bot in bots), timeout=SETTLE,
                     what="one live session per bot")  # fmt: skip

    async def seen_by(worker: Worker) -> dict[str, int] | None:
        # Disabled bots are listed too (status `disabled`, no worker): only the enabled count.
        listed = [b for b in (await worker.get("/bots"))["bots"] if b["status"] != "disabled"]
        registered = (await worker.get("/workers"))["workers"]
        active = {w["id"] for w in registered if w["state"] == "active"}
        health = await worker.get("/health")
        if sum(w["bots"] for w in registered) != len(bots):  # no lease left of a gone worker or bot
            return None
        if len(listed) != len(bots) or any(b["status"] != "ready" or b["worker"] is None for b in listed):
            return None
        counts = Counter(b["worker"] for b in listed)
        if len(active) != workers or set(counts) != active or max(counts.values()) - min(counts.values()) > 1:
            return None
        if (health["status"], health["workers"], health["unownedBots"]) != ("ok", workers, 0):
            return None
        return dict(counts)

    async def agreed() -> dict[str, int] | None:
        # Read back to back: a bot still moving between two reads (shares converging from one
        # within-one spread to the target one) must not pass as two different settled views.
        views = [await seen_by(worker) for worker in world.fleet.alive]
        return views[0] if views[0] is not None and all(view == views[0] for view in views) else None

    view = await eventually(agreed, timeout=SETTLE, what=f"every worker's view of {workers} workers")
    assert all(discord.live_sessions(bot) == 1 for bot in bots)
    assert {bot.name: bot.max_concurrent_sessions for bot in bots} == {bot.name: 1 for bot in bots}
    return view


def positions(world: World) -> dict[int, tuple[FakePlayer, int]]:
    """Each playing bot's Lavalink player and its position now."""
    now: dict[int, tuple[FakePlayer, int]] = {}
    for playing in world.playing:
        player = world.player(playing.bot, playing.guild)
        assert player is not None and player.track is not None, f"{playing.bot.name} is not playing"
        now[playing.bot.client_id] = (player, player.position_ms)
    return now


async def snapshots_saved(world: World) -> None:
    """Every playing bot's player has been saved since now (what a bot that moves without a
    hand-over resumes from). The workers run on this machine: their clock is ours."""
    since = utcnow()

    async def saved() -> bool:
        for playing in world.playing:
            snapshot = await PlayerSnapshot.find_one(
                PlayerSnapshot.bot_id == playing.bot.client_id, PlayerSnapshot.guild_id == playing.guild.id
            )
            if snapshot is None or snapshot.current is None or snapshot.saved_at <= since:
                return False
        return True

    await eventually(saved, timeout=SETTLE, what="the players saved again")


async def play_on(world: World, before: dict[int, tuple[FakePlayer, int]]) -> None:
    """Every bot that was playing plays its track again, from no earlier than one snapshot
    interval before where it was (a moved bot resumes from its saved position)."""
    for playing in world.playing:
        old_player, old_position = before[playing.bot.client_id]

        def resumed(playing: Playing = playing) -> FakePlayer | None:
            player = world.player(playing.bot, playing.guild)
            if player is None or player.track is None or player.track["info"]["title"] != playing.title:
                return None
            return player

        player = await eventually(resumed, timeout=SETTLE, what=f"{playing.bot.name} playing again")
        if player is old_player:  # it did not move
            assert player.position_ms >= old_position
            continue
        starts = [patch["position"] for patch in player.patches if "track" in patch and "position" in patch]
        assert starts, player.patches
        assert starts[0] >= old_position - POSITION_SLACK_MS, (playing.bot.name, starts[0], old_position)


@pytest.mark.timeout(900)
async def test_workers_form_one_fleet_through_churn(world: World) -> None:
    discord, fleet = world.discord, world.fleet

    # 1. Three workers start at the same moment.
    await fleet.start(3)
    await settled(world, workers=3)
    for playing in world.playing:
        interaction = await discord.send_command(
            playing.bot, guild_id=playing.guild.id, channel_id=playing.guild.text_channel_id,
            user=playing.user, name="play", options={"query": playing.title},
        )  # fmt: skip
        message = await interaction.wait_for_message(timeout=30)
        assert playing.title in message.text, message.text

    def all_playing() -> bool:
        return all(world.title(p.bot, p.guild) == p.title for p in world.playing)

    await eventually(all_playing, timeout=SETTLE, what="both players playing")
    await snapshots_saved(world)

    # 2. A fourth worker joins: it takes its share, only that moves.
    before = positions(world)
    await fleet.start(1)
    counts = await settled(world, workers=4)
    assert sorted(counts.values()) == [1, 1, 2, 2]
    await play_on(world, before)

    # 3. SIGTERM the worker of a playing bot: it hands its bots over at once.
    owner = await owner_of(world, world.playing[0].bot)
    before = positions(world)
    owner.signal(signal.SIGTERM)
    assert await owner.wait_exit() == 0, owner.tail()
    await settled(world, workers=3)
    await play_on(world, before)

    # 4. SIGKILL the worker of a playing bot: taken over after LEASE_TTL, resumed from snapshots.
    await snapshots_saved(world)
    victim = await owner_of(world, world.playing[1].bot)
    before = positions(world)
    victim.signal(signal.SIGKILL)
    await victim.wait_exit()
    await settled(world, workers=2)
    await play_on(world, before)

    # 5. The database stops for 10 s: every worker stops its bots at its renew deadline (nobody
    # can prove who owns what), then takes its own bots back when it returns.
    await snapshots_saved(world)
    before = positions(world)
    loop = asyncio.get_running_loop()
    world.database.kill()
    down_since = loop.time()
    await eventually(lambda: not any(discord.is_connected(bot) for bot in world.bots), timeout=SETTLE,
                     what="every bot stopped at the renew deadline")  # fmt: skip
    # The outage itself lasts 10 s (the scenario, not a wait for something to happen).
    await asyncio.sleep(max(0.0, down_since + OUTAGE - loop.time()))
    world.database.start()
    await settled(world, workers=2)
    await play_on(world, before)


async def owner_of(world: World, bot: FakeBot) -> Worker:
    listed = (await world.fleet.alive[0].get("/bots"))["bots"]
    (worker_id,) = [b["worker"] for b in listed if b["clientId"] == str(bot.client_id)]
    for worker in world.fleet.alive:
        if any(w["me"] and w["id"] == worker_id for w in (await worker.get("/workers"))["workers"]):
            return worker
    raise AssertionError(f"no live worker is {worker_id}")


@pytest.mark.timeout(600)
async def test_admin_endpoints_act_through_the_database_on_any_worker(world: World) -> None:
    """A restart, a disable, an enable, a new bot and a delete sent to a worker that does not
    run the bot: its owner (or whoever claims it) reacts; never two sessions."""
    discord, fleet = world.discord, world.fleet
    await fleet.start(2)
    await settled(world, workers=2)
    bot = world.bots[2]
    owner = await owner_of(world, bot)
    (other,) = [worker for worker in fleet.alive if worker is not owner]
    url = f"/bots/{bot.client_id}"

    identifies = bot.identify_count
    restarted = await other.http.post(f"{url}/restart", headers=ADMIN)
    assert restarted.status_code == 200, restarted.text
    await eventually(lambda: bot.identify_count > identifies, timeout=SETTLE, what="the owner's restart")
    await settled(world, workers=2)

    disabled = await other.http.patch(url, json={"enabled": False}, headers=ADMIN)
    assert disabled.status_code == 200, disabled.text
    await eventually(lambda: not discord.is_connected(bot), timeout=SETTLE, what="the owner stopping it")
    others = [b for b in world.bots if b is not bot]
    world.bots = others
    await settled(world, workers=2)  # the others, still spread within one, /health ok

    enabled = await other.http.patch(url, json={"enabled": True}, headers=ADMIN)
    assert enabled.status_code == 200, enabled.text
    world.bots = [*others, bot]
    await settled(world, workers=2)

    newcomer = discord.add_bot(name="Newcomer")
    created = await other.http.post("/bots", json={"token": newcomer.token}, headers=ADMIN)
    assert created.status_code == 201, created.text
    world.bots.append(newcomer)
    await settled(world, workers=2)

    deleted = await other.http.delete(url, headers=ADMIN)
    assert deleted.status_code == 204, deleted.text
    world.bots.remove(bot)
    await eventually(lambda: not discord.is_connected(bot), timeout=SETTLE, what="the deleted bot stopping")
    await settled(world, workers=2)
    assert bot.max_concurrent_sessions == 1 and newcomer.max_concurrent_sessions == 1
