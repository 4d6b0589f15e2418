"""A running fleet with music: fake Discord, fake Lavalink node(s), the real app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.music.player import ChorusPlayer
from app.music.service import MusicService
from app.settings import Settings
from tests.fakes.discord import FakeBot, FakeDiscord, FakeGuild, FakeUser
from tests.fakes.discord_interactions import FakeInteraction
from tests.fakes.lavalink import FakeLavalink, FakePlayer
from tests.fleet import RunningApp, running_app, store_bot


async def until(predicate: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@dataclass
class World:
    discord: FakeDiscord
    lavalinks: list[FakeLavalink]
    app: RunningApp
    guild: FakeGuild
    bots: list[FakeBot]
    outsiders: list[FakeBot] = field(default_factory=list)  # in the network, not in the guild
    users: list[FakeUser] = field(default_factory=list)
    settings: Settings | None = None
    app_stack: contextlib.AsyncExitStack | None = None

    async def restart(
        self, *, while_down: Callable[[], Awaitable[None]] | None = None, wait: bool = True
    ) -> None:
        """Stop the service (the lifespan shutdown SIGTERM runs) and start it again."""
        assert self.app_stack is not None and self.settings is not None
        await self.app_stack.aclose()
        if while_down is not None:
            await while_down()
        self.app_stack = contextlib.AsyncExitStack()
        self.app = await self.app_stack.enter_async_context(running_app(self.settings))
        if wait:
            await self.wait_ready()

    async def wait_ready(self, *, nodes: bool = True, timeout: float = 30.0) -> None:
        """Every bot ready on Discord and (with `nodes`) connected to every Lavalink node."""
        for bot in self.bots + self.outsiders:
            await self.app.wait_for(bot, BotState.READY, timeout=timeout)
            if nodes:
                await self.wait_nodes(bot, timeout=timeout)

    async def wait_nodes(self, bot: FakeBot, *, timeout: float = 30.0) -> None:
        await until(lambda: len(self.service(bot).nodes.healthy()) == len(self.lavalinks),
                    timeout=timeout, what="nodes")  # fmt: skip

    @property
    def bot(self) -> FakeBot:
        return self.bots[0]

    @property
    def lavalink(self) -> FakeLavalink:
        return self.lavalinks[0]

    @property
    def text_channel(self) -> int:
        return self.guild.text_channel_id

    @property
    def voice_channel(self) -> int:
        return self.guild.voice_channel_id

    def service(self, bot: FakeBot | None = None) -> MusicService:
        runner = self.app.manager.get_runner((bot or self.bot).client_id)
        assert runner is not None and runner.client is not None
        return runner.client.music

    def player(self, bot: FakeBot | None = None) -> ChorusPlayer | None:
        return self.service(bot).get_player(self.guild.id)

    def lavalink_player(self, bot: FakeBot | None = None) -> FakePlayer | None:
        """The player Lavalink holds for this bot in the guild, on whichever fake node has it."""
        bot = bot or self.bot
        for lavalink in self.lavalinks:
            session = lavalink.session_for_user(bot.client_id)
            if session is not None and self.guild.id in session.players:
                return session.players[self.guild.id]
        return None

    async def user_in_voice(self, name: str = "Listener", channel_id: int | None = None) -> FakeUser:
        user = self.discord.add_user(name=name)
        self.discord.add_member(self.guild.id, user)
        await self.discord.set_user_voice(self.guild.id, user.id, channel_id or self.voice_channel, user=user)
        self.users.append(user)
        return user

    async def run(
        self,
        user: FakeUser,
        name: str,
        *,
        bot: FakeBot | None = None,
        subcommand: str | None = None,
        **options: Any,
    ) -> FakeInteraction:
        """Run a slash command as `user` and wait until the bot has answered with a message."""
        interaction = await self.discord.send_command(
            bot or self.bot,
            guild_id=self.guild.id,
            channel_id=self.text_channel,
            user=user,
            name=name,
            options=options,
            subcommand=subcommand,
        )
        await interaction.wait_for_message(lambda message: bool(message.text), timeout=30)
        return interaction

    async def playing(self, title: str, bot: FakeBot | None = None) -> FakePlayer:
        await until(lambda: (p := self.lavalink_player(bot)) is not None and p.track is not None
                    and p.track["info"]["title"] == title, what=f"{title} playing")  # fmt: skip
        player = self.lavalink_player(bot)
        assert player is not None
        return player


WorldFactory = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(
    fake_discord: FakeDiscord, make_settings: Any, mongo: AsyncMongoClient[dict[str, Any]]
) -> AsyncIterator[WorldFactory]:
    worlds: list[World] = []
    async with contextlib.AsyncExitStack() as stack:

        async def close_worlds() -> None:
            for world in worlds:
                if world.app_stack is not None:
                    await world.app_stack.aclose()

        stack.push_async_callback(close_worlds)

        async def factory(
            *,
            bots: int = 1,
            lavalinks: int = 1,
            outside: int = 0,
            lavalink_up: bool = True,
            wait_for_nodes: bool | None = None,
            lavalink_options: dict[str, Any] | None = None,
            guild_shard: tuple[int, int] | None = None,
            extra_guilds: Sequence[tuple[int, int] | None] = (),
            guild_name: str | None = None,
            guild_locale: str = "en-US",
            **overrides: Any,
        ) -> World:
            """`lavalink_up=False`: the Lavalink nodes are configured but not listening yet (the
            test calls `start()`); `lavalink_options` go to each FakeLavalink. `guild_shard`
            puts the guild on that (shard, shard count); each bot also joins one more guild per
            `extra_guilds` entry (on that shard, if given)."""
            nodes = [FakeLavalink(**(lavalink_options or {})) for _ in range(lavalinks)]
            for lavalink in nodes:
                if lavalink_up:
                    await stack.enter_async_context(lavalink)
                else:
                    lavalink.reserve_port()
                    stack.push_async_callback(lavalink.close)
            values: dict[str, Any] = {
                "discord_api_base": fake_discord.api_base,
                "discord_gateway_url": fake_discord.gateway_url,
                "identify_interval": 0.0,
                "lavalink_nodes": ",".join(f"node{i}={n.uri}={n.password}" for i, n in enumerate(nodes)),
                "lavalink_reconnect_max_delay": 1.0,
            }
            settings = make_settings(**(values | overrides))
            guild = fake_discord.add_guild(
                member_count=5, shard=guild_shard, name=guild_name, preferred_locale=guild_locale
            )
            others = [fake_discord.add_guild(shard=shard) for shard in extra_guilds]
            fake_bots = [fake_discord.add_bot(name=f"Chorus {i + 1}") for i in range(bots)]
            for bot in fake_bots:
                for joined in (guild, *others):
                    await fake_discord.add_bot_to_guild(bot, joined.id)
                await store_bot(mongo, settings, bot)
            outsiders = [fake_discord.add_bot(name=f"Chorus {bots + i + 1}") for i in range(outside)]
            for bot in outsiders:
                await store_bot(mongo, settings, bot)
            for lavalink in nodes:
                for n in range(1, 13):
                    uri = f"https://music.example/t{n}"
                    lavalink.add_track(identifier=f"t{n}", title=f"Song {n}", author="Band", uri=uri)
            app_stack = contextlib.AsyncExitStack()
            running = await app_stack.enter_async_context(running_app(settings))
            world = World(
                discord=fake_discord,
                lavalinks=nodes,
                app=running,
                guild=guild,
                bots=fake_bots,
                outsiders=outsiders,
                settings=settings,
                app_stack=app_stack,
            )
            worlds.append(world)
            await world.wait_ready(nodes=lavalink_up if wait_for_nodes is None else wait_for_nodes)
            for bot in fake_bots + outsiders:
                # The operator's deploy: the fake then knows every option's type and command ids.
                await world.service(bot).client.tree.sync()
            return world

        yield factory
