"""A database outage never times out an interaction: settings answer within Discord's 3 s."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.bots.status import BotState
from app.db.models import GuildSettings
from app.music import guild_settings
from tests.fakes.discord import FakeDiscord, FakeInteraction, Permission
from tests.fleet import running_app, store_bot
from tests.own_database import own_database


async def test_settings_answer_in_time_while_the_database_hangs(
    tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """With the database paused (SIGSTOP), a settings cache miss used to wait for the database
    (5 s of server selection, or a read that never ends) before answering: past Discord's 3 s,
    which the fake enforces here like Discord (10062 Unknown interaction)."""
    monkeypatch.setattr(guild_settings, "RETRY_AFTER", 0.5)
    async with own_database(tmp_path / "db", fake_discord, make_settings) as own:
        database, settings, observer = own.process, own.settings, own.observer
        bot = fake_discord.add_bot()
        guild = fake_discord.add_guild()
        await fake_discord.add_bot_to_guild(bot, guild.id)
        await store_bot(observer, settings, bot)
        dj_role = fake_discord.add_role(guild.id, "DJ")
        stored = GuildSettings(bot_id=bot.client_id, guild_id=guild.id, dj_role_id=dj_role)
        await own.db[GuildSettings.Settings.name].insert_one(stored.model_dump(exclude={"id", "revision_id"}))
        admin = fake_discord.add_user(name="Admin")
        fake_discord.add_member(guild.id, admin, permissions=Permission.MANAGE_GUILD)

        async def run(name: str, **kwargs: Any) -> FakeInteraction:
            interaction = await fake_discord.send_command(
                bot, guild_id=guild.id, channel_id=guild.text_channel_id, user=admin, name=name, **kwargs
            )
            await interaction.wait_for_message(timeout=10)
            return interaction

        async with running_app(settings) as running:
            await running.wait_for(bot, BotState.READY)
            fake_discord.interaction_deadline = 3.0  # Discord's window for the first answer
            database.pause()
            try:
                shown = await run("settings", subcommand="show")
                assert shown.ephemeral and "none (everyone controls the music)" in shown.text  # defaults
                saved = await run("247", options={"state": "on"})
                assert saved.ephemeral and "can't be saved right now" in saved.text
                again = await run("settings", subcommand="show")
                assert "none (everyone controls the music)" in again.text
            finally:
                database.resume()
            # One failed read (the language lookup before the command, or the settings: one
            # backoff for both); within RETRY_AFTER nothing asked the database again.
            failures = [
                r
                for r in caplog.records
                if "guild settings" in r.getMessage() and "unavailable" in r.getMessage()
            ]
            assert len(failures) == 1

            # Failures are not remembered for good: the stored DJ role shows up again.
            async with asyncio.timeout(30):
                while f"<@&{dj_role}>" not in (await run("settings", subcommand="show")).text:
                    await asyncio.sleep(0.2)
