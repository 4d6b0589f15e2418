"""GET /metrics against a running fleet with music: the names dashboards rely on, their values,
bounded labels, and METRICS_TOKEN."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.metrics import INTERACTIONS
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot
from tests.music.conftest import World, WorldFactory, until
from tests.prometheus_text import Samples, parse, value


async def scrape(world: World, **headers: str) -> Samples:
    response = await world.app.http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")  # what Prometheus reads
    return parse(response.text)


def counter(samples: Samples, name: str, **labels: str) -> float:
    return value(samples, name, **labels) or 0.0


def _handled(command: str, outcome: str) -> float:
    """This process's count of a command handled with an outcome (what /metrics reports)."""
    return INTERACTIONS.labels(command=command, outcome=outcome)._value.get()  # pyright: ignore[reportAttributeAccessIssue]  # prometheus_client's value


async def test_metrics_describe_the_fleet_with_bounded_labels(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    before = await scrape(world)
    played, mistaken = _handled("play", "ok"), _handled("seek", "user_error")
    user = await world.user_in_voice("Alice")
    answer = await world.run(user, "play", query="Song 1")
    assert "Now playing" in answer.text
    await world.playing("Song 1")
    refused = await world.run(user, "seek", time="99:00:00")  # longer than the track: the user's mistake
    assert refused.ephemeral
    await until(lambda: world.lavalink_player() is not None)
    # A command is counted once it returns, which is after its answer reached Discord.
    await until(lambda: _handled("play", "ok") > played and _handled("seek", "user_error") > mistaken)

    samples = await scrape(world)
    assert value(samples, "chorus_bots", state="ready") == 2
    for state in ("starting", "reconnecting", "failed", "stopped"):
        assert value(samples, "chorus_bots", state=state) == 0
    assert value(samples, "chorus_guilds") == 2  # two bots in one guild: two memberships
    assert value(samples, "chorus_voice_connections") == 1
    assert value(samples, "chorus_players", state="playing") == 1
    assert value(samples, "chorus_players", state="paused") == 0
    assert value(samples, "chorus_players", state="stranded") == 0
    assert value(samples, "chorus_lavalink_nodes", state="connected") == 1
    assert value(samples, "chorus_lavalink_nodes", state="disconnected") == 0
    stats = world.lavalink.stats()
    assert value(samples, "chorus_lavalink_node_players", node="node0") is not None
    assert value(samples, "chorus_lavalink_node_cpu_ratio", node="node0") == stats["cpu"]["lavalinkLoad"]
    assert value(samples, "chorus_database_up") == 1
    # One IDENTIFY of 500 is far below the share worth a series (app/bots/telemetry.BUDGET_SHOWN).
    assert not [name for name, _ in samples if name == "chorus_identify_budget_used_ratio"]
    assert (
        counter(samples, "chorus_interactions_total", command="play", outcome="ok")
        - counter(before, "chorus_interactions_total", command="play", outcome="ok")
        == 1
    )
    assert (
        counter(samples, "chorus_interactions_total", command="seek", outcome="user_error")
        - counter(before, "chorus_interactions_total", command="seek", outcome="user_error")
        == 1
    )
    latency = counter(samples, "chorus_interaction_seconds_count", command="play") - counter(
        before, "chorus_interaction_seconds_count", command="play"
    )
    assert latency == 1
    assert counter(samples, "chorus_identifies_total") >= 2
    assert value(samples, "process_resident_memory_bytes") is not None
    # The fleet-wide leases (a fleet of one worker here): both bots held by a live worker.
    assert value(samples, "chorus_leases", state="held") == 2
    assert value(samples, "chorus_leases", state="expired") == 0
    assert value(samples, "chorus_leases", state="unowned") == 0

    # No guild, channel or user id in any label: cardinality stays bounded.
    ids = {str(world.guild.id), str(world.voice_channel), str(world.text_channel), str(user.id)}
    labels = {label for _, pairs in samples for _, label in pairs}
    assert not ids & labels


async def test_a_failing_command_is_counted_failed_and_still_timed(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    before = _handled("play", "failed")

    async def broken_search(query: str) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(world.service(), "search", broken_search)
    answer = await world.run(user, "play", query="Song 1")
    assert answer.ephemeral and "went wrong" in answer.text
    await until(lambda: _handled("play", "failed") == before + 1)


async def test_stranded_players_and_a_lost_lavalink_and_a_failed_bot(make_world: WorldFactory) -> None:
    world = await make_world(bots=2)
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")

    await world.lavalink.shutdown_node()
    await until(lambda: world.player() is not None and world.player().stranded_position is not None)  # type: ignore[union-attr]
    samples = await scrape(world)
    assert value(samples, "chorus_players", state="stranded") == 1
    assert value(samples, "chorus_lavalink_nodes", state="disconnected") == 1
    assert value(samples, "chorus_lavalink_nodes", state="connected") == 0
    assert value(samples, "chorus_lavalink_node_players", node="node0") is None  # no stats while it is down

    victim = world.bots[1]
    await world.discord.revoke_token(victim)
    await world.app.wait_for(victim, BotState.FAILED)
    samples = await scrape(world)
    assert value(samples, "chorus_bots", state="failed") == 1
    assert value(samples, "chorus_bots", state="ready") == 1


async def test_identifies_are_counted_against_each_bots_budget(make_world: WorldFactory) -> None:
    world = await make_world(identify_budget_share=0.01)  # a budget of 10 IDENTIFYs a day
    samples = await scrape(world)
    before = counter(samples, "chorus_identifies_total")
    assert value(samples, "chorus_identify_budget_used_ratio", bot=str(world.bot.client_id)) == 0.1
    await world.discord.invalidate_session(world.bot)  # op 9: discord.py identifies again
    await world.discord.wait_for_identify(world.bot, count=2, timeout=30)
    samples = await scrape(world)
    assert counter(samples, "chorus_identifies_total") == before + 1
    assert value(samples, "chorus_identify_budget_used_ratio", bot=str(world.bot.client_id)) == 0.2


async def test_snapshot_writes_are_counted(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    before = counter(await scrape(world), "chorus_snapshot_writes_total")
    assert await world.service().snapshots.save_all() == 1
    assert counter(await scrape(world), "chorus_snapshot_writes_total") == before + 1


async def test_metrics_token_requires_a_bearer(make_world: WorldFactory) -> None:
    world = await make_world(metrics_token="scrape-secret")
    http = world.app.http
    missing = await http.get("/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    samples = await scrape(world, Authorization="Bearer scrape-secret")
    assert value(samples, "chorus_bots", state="ready") == 1
    # Open by default, like /health; never part of the JSON API's schema.
    assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]


async def test_disabled_bots_are_counted_and_listed(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    settings = fleet_settings.model_copy(update={"admin_api_token": SecretStr("t")})
    running_bot, disabled = fake_discord.add_bot(name="On"), fake_discord.add_bot(name="Off")
    await store_bot(mongo, settings, running_bot)
    await store_bot(mongo, settings, disabled, enabled=False)
    async with running_app(settings) as running:
        await running.wait_for(running_bot, BotState.READY)
        samples = parse((await running.http.get("/metrics")).text)
        assert value(samples, "chorus_bots", state="ready") == 1
        assert value(samples, "chorus_bots", state="disabled") == 1
        signed = await running.http.post(
            "/dashboard/sign-in",
            content="token=t",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        cookie = signed.headers["set-cookie"].split(";")[0]
        view = (await running.http.get("/dashboard/state", headers={"Cookie": cookie})).json()
        assert [(bot["name"], bot["state"]) for bot in view["bots"]] == [("On", "ready"), ("Off", "disabled")]
