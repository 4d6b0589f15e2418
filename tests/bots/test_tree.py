"""Every interaction gets an answer; a failure while answering is logged once and never escapes."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.router import FleetRouter
from app.bots.status import BotState
from app.music.replies import UNEXPECTED
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


def _never_retrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()  # a finished task's unretrieved exception is reported when it is collected
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_an_answer_discord_py_cannot_read_is_logged_once(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    """/invite with no other bot left answers an ephemeral error. The callback's reply is a
    body discord.py cannot parse (TypeError after Discord took the answer): that used to escape
    the error handler as "Task exception was never retrieved", logged with no context."""
    bot = fake_discord.add_bot()
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(bot, guild.id)
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        fake_discord.answer_callbacks_oddly()
        user = fake_discord.add_user()
        interaction = await fake_discord.send_command(
            bot, guild_id=guild.id, channel_id=guild.text_channel_id, user=user, name="invite"
        )
        message = await interaction.wait_for_message(timeout=10)
        assert interaction.ephemeral and "already here or full" in message.text

        def answers() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Answering /invite")]

        async with asyncio.timeout(10):
            while not answers():
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # let anything that would log twice do so
        (logged,) = answers()
        assert f"bot {bot.client_id}" in logged and f"guild {guild.id}" in logged
        assert "went through" in logged
        assert _never_retrieved(caplog) == []


async def test_an_unexpected_failure_answers_and_logs_its_context(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: Mongo,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: FleetRouter, guild_id: int) -> None:
        raise RuntimeError("an invite bug")

    monkeypatch.setattr(FleetRouter, "invite_for", broken)
    bot = fake_discord.add_bot()
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(bot, guild.id)
    await store_bot(mongo, fleet_settings, bot)
    async with running_app(fleet_settings) as running:
        await running.wait_for(bot, BotState.READY)
        # The error answer hits a reply discord.py cannot read, too.
        fake_discord.answer_callbacks_oddly()
        user = fake_discord.add_user()
        interaction = await fake_discord.send_command(
            bot, guild_id=guild.id, channel_id=guild.text_channel_id, user=user, name="invite"
        )
        message = await interaction.wait_for_message(timeout=10)
        assert interaction.ephemeral and message.text == UNEXPECTED
        async with asyncio.timeout(10):
            while not [r for r in caplog.records if r.getMessage().startswith("Answering /invite")]:
                await asyncio.sleep(0.02)
    failures = [r for r in caplog.records if r.getMessage().startswith("Command /invite (")]
    assert len(failures) == 1 and f"guild {guild.id}" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info and failures[0].exc_info[1], RuntimeError)
    assert _never_retrieved(caplog) == []
