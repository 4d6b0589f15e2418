"""A restart of an unchanged fleet costs no database round trip of its own per bot: what every bot
would read (guild records, saved players, IDENTIFY logs) is read once for the fleet, and the
IDENTIFYs are written in batches (one bulk write per window, tests/bots/test_identify_log_book.py
shows a hundred in one). Counted with PyMongo's command monitoring on the service's own client;
counting is not timing, so the numbers are asserted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from app.bots.runner import BotRunner
from app.bots.status import BotState
from app.db import connection
from app.db.models import MusicBot
from app.settings import Settings
from tests.fakes.discord import FakeBot, FakeDiscord
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


class _Commands(monitoring.CommandListener):
    """Every command the service sends, with the bot ids (client id, record id) it names."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, set[object]]] = []  # ("command collection", ids named)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = f"{event.command_name} {event.command.get(event.command_name)}"
        self.sent.append((command, _ids_in(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def per_bot(self, bots: dict[object, int], since: int = 0) -> dict[int, list[str]]:
        """The commands naming exactly one bot (by any of its ids), per bot, but the IDENTIFY
        log's batched writes (a window may hold one bot's IDENTIFY only)."""
        sent: dict[int, list[str]] = {bot: [] for bot in bots.values()}
        for command, ids in self.sent[since:]:
            if command == _LOG_WRITE:
                continue
            owners = {bots[i] for i in ids if i in bots}
            if len(owners) == 1:
                sent[owners.pop()].append(command)
        return sent

    def naming_several(self, bots: dict[object, int], since: int = 0) -> list[str]:
        """Commands for many bots at once (the fleet's start reads)."""
        return [
            command
            for command, ids in self.sent[since:]
            if command != _LOG_WRITE and len({bots[i] for i in ids if i in bots}) > 1
        ]

    def log_writes(self, since: int = 0) -> int:
        return sum(1 for command, _ in self.sent[since:] if command == _LOG_WRITE)


_LOG_WRITE = "update bot_identify_log"


def _ids_in(value: object) -> set[object]:
    found: set[object] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
        elif isinstance(item, list | tuple):
            stack.extend(item)  # pyright: ignore[reportUnknownArgumentType]
        elif isinstance(item, int | ObjectId) and not isinstance(item, bool):
            found.add(item)
    return found


async def _started(running: RunningApp, bots: list[FakeBot]) -> None:
    """Every bot ready, its first guild pass done and its saved players looked at."""
    runners: list[BotRunner] = []
    for bot in bots:
        await running.wait_for(bot, BotState.READY)
        runner = running.manager.get_runner(bot.client_id)
        assert runner is not None and runner.client is not None
        runners.append(runner)
    async with asyncio.timeout(30):
        for runner in runners:
            assert runner.client is not None
            await runner.client.music.snapshots.restored.wait()
            while runner.guild_sync_passes == 0:
                await asyncio.sleep(0.02)


async def test_a_restart_costs_no_round_trip_of_its_own_per_bot(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = _Commands()

    def monitored(url: str, **kwargs: Any) -> Mongo:
        return AsyncMongoClient(url, tz_aware=True, event_listeners=[listener], **kwargs)

    monkeypatch.setattr(connection, "make_client", monitored)
    bots = [fake_discord.add_bot() for _ in range(4)]
    for bot in bots:
        guild = fake_discord.add_guild()
        await fake_discord.add_bot_to_guild(bot, guild.id)
        await store_bot(mongo, fleet_settings, bot)
    records = mongo[fleet_settings.mongodb_database][MusicBot.Settings.name]
    ids: dict[object, int] = {bot.client_id: bot.client_id for bot in bots}
    async for doc in records.find({}):
        ids[doc["_id"]] = doc["client_id"]

    # First start: the facts that are new (the guild joined, the counts).
    async with running_app(fleet_settings) as running:
        await _started(running, bots)
        first = listener.per_bot(ids)
    for bot in bots:
        assert sorted(first[bot.client_id]) == [
            "update music_bots",  # its guild count: new
            "update server_music_bots",  # its guild: newly active
        ], first[bot.client_id]
    assert 1 <= listener.log_writes() <= len(bots)  # every IDENTIFY written, in batches
    # A restart with nothing changed: nothing per bot; the rest is read once for the fleet.
    mark = len(listener.sent)
    async with running_app(fleet_settings) as running:
        await _started(running, bots)
        again = listener.per_bot(ids, since=mark)
        fleet_wide = listener.naming_several(ids, since=mark)
        assert 1 <= listener.log_writes(since=mark) <= len(bots)
    assert again == {bot.client_id: [] for bot in bots}
    # The lease protocol works on all the worker's bots at once (a claim of up to 100 leases, its
    # read-back, the batched status publications): none of it is per bot, and it is not a read
    # of a bot's start.
    coordination = [command for command in fleet_wide if command.endswith(" bot_leases")]
    assert coordination and len(coordination) < 2 * len(bots)
    starts = sorted(command for command in fleet_wide if command not in coordination)
    assert starts == [
        "distinct player_snapshots",
        "distinct voice_assignments",  # which bots have rows an older owner may have left
        "find bot_identify_log",
        "find server_music_bots",
    ]
    logs = mongo[fleet_settings.mongodb_database]["bot_identify_log"]
    async for doc in logs.find({}):
        assert len(doc["timestamps"]) == 2, doc  # each start's IDENTIFY, written before it was sent
