"""Every interaction gets an answer; a failure while answering is logged once and never escapes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.router import FleetRouter
from app.bots.status import BotState
from app.music.replies import UNEXPECTED
from app.settings import Settings
from tests.fakes.discord import FakeDiscord, FakeGuild, FakeInteraction, FakeMessage
from tests.fleet import running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


def _never_retrieved(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()  # a finished task's unretrieved exception is reported when it is collected
    return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


def _invite_answers(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Answering /invite")]


@contextlib.asynccontextmanager
async def _invite_answered_oddly(
    fake_discord: FakeDiscord, settings: Settings, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[tuple[FakeGuild, FakeInteraction, FakeMessage]]:
    """A ready bot in a guild answers /invite, and Discord takes each answer with a body
    discord.py cannot parse; yields, the app still running, once the user has the answer and
    the bot has logged answering it."""
    bot = fake_discord.add_bot()
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(bot, guild.id)
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.READY)
        fake_discord.answer_callbacks_oddly()
        user = fake_discord.add_user()
        interaction = await fake_discord.send_command(
            bot, guild_id=guild.id, channel_id=guild.text_channel_id, user=user, name="invite"
        )
        message = await interaction.wait_for_message(timeout=10)
        async with asyncio.timeout(10):
            while not _invite_answers(caplog):
                await asyncio.sleep(0.02)
        yield guild, interaction, message


async def test_an_answer_discord_py_cannot_read_is_logged_once(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo, caplog: pytest.LogCaptureFixture
) -> None:
    """/invite with no other bot left answers an ephemeral error. The callback's reply is a
    body discord.py cannot parse (TypeError after Discord took the answer): that used to escape
    the error handler as "Task exception was never retrieved", logged with no context."""
    async with _invite_answered_oddly(fake_discord, fleet_settings, mongo, caplog) as answered:
        guild, interaction, message = answered
        assert interaction.ephemeral and "already here or full" in message.text
        await asyncio.sleep(0.2)  # let anything that would log twice do so
        (logged,) = _invite_answers(caplog)
        assert f"bot {interaction.bot.client_id}" in logged and f"guild {guild.id}" in logged
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
    # The error answer hits a reply discord.py cannot read, too.
    async with _invite_answered_oddly(fake_discord, fleet_settings, mongo, caplog) as answered:
        guild, interaction, message = answered
        assert interaction.ephemeral and message.text == UNEXPECTED
    failures = [r for r in caplog.records if r.getMessage().startswith("Command /invite (")]
    assert len(failures) == 1 and f"guild {guild.id}" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info and failures[0].exc_info[1], RuntimeError)
    assert _never_retrieved(caplog) == []
