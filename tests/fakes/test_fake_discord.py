"""Self-tests of the fake Discord, driven by real discord.py clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .discord import FakeBot, FakeDiscord, FakeGuild, FakeUser, Permission, make_fake_token, shard_of

STEP = 3.0  # seconds any single wait may take


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        monkeypatch.setattr(Route, "BASE", server.api_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
        yield server


class _NoIdentifyWait:
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before every non-initial IDENTIFY (and between shards); not
        against the fake."""


def _client_options() -> dict[str, Any]:
    """What every client here runs with: the guilds and voice states intents only, no member
    cache, no wait for guilds to stream in."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return {
        "intents": intents,
        "member_cache_flags": discord.MemberCacheFlags.none(),
        "guild_ready_timeout": 0.1,
    }


class _Client(_NoIdentifyWait, discord.Client):
    pass


def make_client() -> discord.Client:
    return _Client(**_client_options())


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str) -> AsyncIterator[asyncio.Task[None]]:
    """Log in, run ``client.connect()`` in a task, and always close the client."""
    task: asyncio.Task[None] | None = None
    try:
        await client.login(token)
        task = asyncio.create_task(client.connect())
        yield task
    finally:
        await client.close()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, STEP)


@contextlib.asynccontextmanager
async def ready(
    client: discord.Client, token: str, *, timeout: float = STEP
) -> AsyncIterator[asyncio.Task[None]]:
    """``running``, once the client is ready."""
    async with running(client, token) as task:
        await asyncio.wait_for(client.wait_until_ready(), timeout)
        yield task


async def bot_in_a_guild(fake: FakeDiscord) -> tuple[FakeBot, FakeGuild]:
    bot = fake.add_bot()
    guild = fake.add_guild()
    await fake.add_bot_to_guild(bot, guild.id)
    return bot, guild


def test_make_fake_token_shape() -> None:
    token = make_fake_token(123456789012345678)
    first, second, third = token.split(".")
    assert base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)) == b"123456789012345678"
    assert second.startswith("FAKE")
    assert len(second) == 6
    assert third.startswith("fake-token-for-tests-only-")
    assert len(third) >= 27
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", part) for part in (first, second, third))
    assert make_fake_token(123456789012345678) != token


@pytest.mark.asyncio
async def test_two_bots_each_see_only_their_guilds(fake: FakeDiscord) -> None:
    bot_a, bot_b = fake.add_bot(name="alpha"), fake.add_bot(name="beta")
    g1, g2, g3 = fake.add_guild(), fake.add_guild(), fake.add_guild()
    await fake.add_bot_to_guild(bot_a, g1.id)
    await fake.add_bot_to_guild(bot_a, g2.id)
    await fake.add_bot_to_guild(bot_b, g3.id)
    client_a, client_b = make_client(), make_client()
    async with ready(client_a, bot_a.token), ready(client_b, bot_b.token):
        assert client_a.user is not None
        assert client_b.user is not None
        assert (client_a.user.id, client_a.user.name) == (bot_a.client_id, "alpha")
        assert (client_b.user.id, client_b.user.name) == (bot_b.client_id, "beta")
        assert client_a.application_id == bot_a.client_id
        assert {g.id for g in client_a.guilds} == {g1.id, g2.id}
        assert {g.id for g in client_b.guilds} == {g3.id}
        guild = client_a.get_guild(g1.id)
        assert guild is not None
        assert guild.name == g1.name
        assert guild.member_count == g1.member_count
        assert isinstance(guild.get_channel(g1.voice_channel_id), discord.VoiceChannel)
        assert isinstance(guild.get_channel(g1.text_channel_id), discord.TextChannel)
        assert guild.default_role.id == g1.id
        assert guild.me is not None
        assert bot_a.identify_count == bot_b.identify_count == 1
        assert bot_a.last_identify_intents == client_a.intents.value
        assert fake.is_connected(bot_a)
        assert fake.is_connected(bot_b)
        who = {(r.path, r.client_id) for r in fake.requests}
        assert ("/users/@me", bot_a.client_id) in who
        assert ("/oauth2/applications/@me", bot_b.client_id) in who
    await asyncio.sleep(0.05)
    assert not fake.is_connected(bot_a)


@pytest.mark.asyncio
async def test_guild_join_and_remove(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    guild = fake.add_guild(name="joined later")
    client = make_client()
    async with ready(client, bot.token):
        assert list(client.guilds) == []
        joined = client.wait_for("guild_join", timeout=STEP)
        await fake.add_bot_to_guild(bot, guild.id)
        joined_guild = await joined
        assert (joined_guild.id, joined_guild.name) == (guild.id, "joined later")
        assert client.get_guild(guild.id) is not None

        removed = client.wait_for("guild_remove", timeout=STEP)
        await fake.remove_bot_from_guild(bot, guild.id)
        assert (await removed).id == guild.id
        assert client.get_guild(guild.id) is None
        assert bot.guild_ids == set()


@pytest.mark.asyncio
async def test_forced_disconnect_resumes_and_replays(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    guild = fake.add_guild()
    client = make_client()
    async with ready(client, bot.token):
        resumed = client.wait_for("resumed", timeout=STEP)
        joined = client.wait_for("guild_join", timeout=STEP)
        await fake.disconnect(bot)
        # Sent while (possibly) disconnected: queued and replayed on RESUME.
        await fake.add_bot_to_guild(bot, guild.id)
        await resumed
        assert (await joined).id == guild.id
        await fake.wait_for_resume(bot)
        assert bot.resume_count == 1
        assert bot.identify_count == 1
        assert fake.is_connected(bot)
        (session,) = bot.sessions.values()
        assert client.ws.sequence == session.seq


@pytest.mark.asyncio
async def test_the_most_concurrent_sessions_per_bot_are_recorded(fake: FakeDiscord) -> None:
    """Two processes running one bot are two live sessions at once: the fake remembers it for
    the whole run, however briefly it lasted; sessions one after the other stay at one."""
    bot = fake.add_bot()
    first = make_client()
    async with ready(first, bot.token):
        assert (fake.live_sessions(bot), bot.max_concurrent_sessions) == (1, 1)
    async with asyncio.timeout(STEP):
        while fake.is_connected(bot):
            await asyncio.sleep(0.01)
    second = make_client()
    async with ready(second, bot.token):
        assert bot.max_concurrent_sessions == 1  # the first had closed before
        third = make_client()
        async with ready(third, bot.token):
            assert fake.live_sessions(bot) == 2
    assert bot.max_concurrent_sessions == 2


@pytest.mark.asyncio
async def test_non_resumable_disconnect_identifies_again(fake: FakeDiscord) -> None:
    bot, guild = await bot_in_a_guild(fake)
    client = make_client()
    async with ready(client, bot.token):
        first_session = client.ws.session_id
        await fake.disconnect(bot, code=4009)
        await fake.wait_for_identify(bot, count=2, timeout=STEP)
        assert bot.resume_count == 0
        await asyncio.wait_for(client.wait_for("ready"), STEP)
        assert client.ws.session_id != first_session
        assert [g.id for g in client.guilds] == [guild.id]
        assert fake.is_connected(bot)


@pytest.mark.asyncio
async def test_invalid_session_identifies_again_in_the_same_client(fake: FakeDiscord) -> None:
    bot, guild = await bot_in_a_guild(fake)
    client = make_client()
    async with ready(client, bot.token):
        first_session = client.ws.session_id
        ready_again = client.wait_for("ready", timeout=STEP)
        await fake.invalidate_session(bot)
        await fake.wait_for_identify(bot, count=2, timeout=STEP)
        await ready_again
        assert bot.resume_count == 0
        assert client.ws.session_id != first_session
        assert [g.id for g in client.guilds] == [guild.id]


@pytest.mark.asyncio
async def test_revoked_and_bad_tokens(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    client = make_client()
    async with ready(client, bot.token) as task:
        await fake.revoke_token(bot)
        with pytest.raises(discord.ConnectionClosed) as excinfo:
            await asyncio.wait_for(task, STEP)
        assert excinfo.value.code == 4004
    assert not fake.is_connected(bot)

    for token in (bot.token, make_fake_token(bot.client_id)):
        other = make_client()
        try:
            with pytest.raises(discord.LoginFailure):
                await other.login(token)
        finally:
            await other.close()
    assert [r.status for r in fake.requests[-2:]] == [401, 401]
    assert fake.requests[-1].client_id is None


@pytest.mark.asyncio
async def test_identify_close_code(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    bot.identify_close_code = 4014
    client = make_client()
    async with running(client, bot.token) as task:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(task, STEP)
    assert bot.identify_count == 0


@pytest.mark.asyncio
async def test_commands_round_trip_and_429(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    guild, foreign = fake.add_guild(), fake.add_guild()
    await fake.add_bot_to_guild(bot, guild.id)
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="play", description="Play a song")
    async def play(interaction: discord.Interaction, query: str) -> None:  # pragma: no cover
        del interaction, query

    try:
        await client.login(bot.token)
        fake.fail_next_with_429("/commands", times=2, retry_after=0.01)
        synced = await asyncio.wait_for(tree.sync(), STEP)
        assert [c.name for c in synced] == ["play"]
        assert synced[0].application_id == bot.client_id
        puts = [r for r in fake.requests if r.method == "PUT"]
        assert [r.status for r in puts] == [429, 429, 200]
        assert puts[-1].client_id == bot.client_id
        assert isinstance(puts[-1].json, list)

        # Bulk overwrite keeps the id of an unchanged command.
        again = await tree.sync()
        assert again[0].id == synced[0].id
        fetched = await tree.fetch_commands()
        assert [(c.id, c.name) for c in fetched] == [(synced[0].id, "play")]
        assert fake.get_commands(bot.client_id)[0]["name"] == "play"

        guild_synced = await tree.sync(guild=discord.Object(guild.id))
        assert guild_synced == []
        with pytest.raises(discord.Forbidden):
            await tree.sync(guild=discord.Object(foreign.id))
        with pytest.raises(discord.Forbidden):
            await client.http.bulk_upsert_global_commands(bot.client_id + 1, [])

        await client.http.delete_global_command(bot.client_id, synced[0].id)
        assert await tree.fetch_commands() == []
        with pytest.raises(discord.NotFound):
            await client.http.delete_global_command(bot.client_id, synced[0].id)
        with pytest.raises(discord.NotFound):
            await client.http.request(Route("GET", "/channels/{channel_id}", channel_id=1))
        assert fake.requests[-1].path == "/channels/1"
        assert fake.requests[-1].status == 404
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_raw_protocol_errors_are_isolated(fake: FakeDiscord) -> None:
    """Misbehaving connections are closed with the right code without affecting a healthy bot."""
    bot = fake.add_bot()
    client = make_client()
    async with ready(client, bot.token), aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me", headers={"Authorization": f"Bot {bot.token}"}) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert json.loads(await r.text())["id"] == str(bot.client_id)

        async def close_code_after(*frames: str) -> int | None:
            async with http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
                hello = await ws.receive_json(timeout=STEP)
                assert hello["op"] == 10
                for frame in frames:
                    await ws.send_str(frame)
                msg = await ws.receive(timeout=STEP)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    return json.loads(msg.data)["op"]
                return ws.close_code

        assert await close_code_after('{"op": 1, "d": null}') == 11
        assert await close_code_after("not json") == 4002
        assert await close_code_after('{"op": 4, "d": {"guild_id": "1"}}') == 4003
        assert await close_code_after('{"op": 2, "d": {"token": "nope"}}') == 4004
        resume = {"op": 6, "d": {"token": bot.token, "session_id": "unknown", "seq": 1}}
        assert await close_code_after(json.dumps(resume)) == 9
        assert await close_code_after('{"op": 99}') == 4001
        assert fake.is_connected(bot)
        assert client.is_ready()
        assert not client.is_closed()


@pytest.mark.asyncio
async def test_voice_state_update_is_recorded(fake: FakeDiscord) -> None:
    bot, guild = await bot_in_a_guild(fake)
    client = make_client()
    async with ready(client, bot.token):
        await client.ws.voice_state(guild.id, guild.voice_channel_id, self_deaf=True)
        for _ in range(100):
            if fake.voice_state_updates:
                break
            await asyncio.sleep(0.01)
        (update,) = fake.voice_state_updates
        assert (update.client_id, update.guild_id, update.channel_id) == (
            bot.client_id,
            guild.id,
            guild.voice_channel_id,
        )
        assert update.self_deaf
        assert not update.self_mute


# ---------------------------------------------------------------------- interactions and voice


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(STEP / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


class _Bot(_NoIdentifyWait, commands.Bot):
    pass


def make_bot() -> commands.Bot:
    return _Bot(command_prefix=commands.when_mentioned, **_client_options())


class QueueView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)
        self.add_item(discord.ui.Button(label="Docs", url="https://example.invalid/docs"))

    @discord.ui.button(label="Next", custom_id="queue:next", style=discord.ButtonStyle.primary)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button[QueueView]) -> None:
        button.disabled = True
        await interaction.response.edit_message(content="page 2", view=self)

    @discord.ui.button(label="Stop", custom_id="queue:stop", style=discord.ButtonStyle.danger)
    async def stop_queue(
        self, interaction: discord.Interaction, button: discord.ui.Button[QueueView]
    ) -> None:
        await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE, then an edit via the channel
        assert interaction.message is not None
        await interaction.message.edit(content="stopped", embed=None, view=None)


class PickView(discord.ui.View):
    @discord.ui.select(
        custom_id="pick:song",
        options=[
            discord.SelectOption(label="Song A", value="a"),
            discord.SelectOption(label="Song B", value="b"),
        ],
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[PickView]) -> None:
        await interaction.response.edit_message(content=f"picked {select.values[0]}", view=None)

    @discord.ui.select(cls=discord.ui.UserSelect, custom_id="pick:user")
    async def pick_user(
        self, interaction: discord.Interaction, select: discord.ui.UserSelect[PickView]
    ) -> None:
        await interaction.response.send_message(f"for {select.values[0].name}", ephemeral=True)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
        label="Your feedback", custom_id="feedback:text"
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)


def add_music_commands(bot: commands.Bot, seen: dict[str, object]) -> None:
    """Slash commands exercising each kind of response; ``seen`` gets what handlers observed."""
    tree = bot.tree

    @tree.command(name="echo", description="Echo privately")
    async def echo(interaction: discord.Interaction, text: str, times: int = 1) -> None:
        seen["times"] = times
        seen["permissions"] = interaction.permissions
        seen["app_permissions"] = interaction.app_permissions
        seen["voice"] = getattr(interaction.user, "voice", None)
        await interaction.response.send_message(f"echo: {text}", ephemeral=True)
        await interaction.edit_original_response(content=f"echo: {text} (edited)")
        seen["original"] = (await interaction.original_response()).content

    @tree.command(name="queue", description="Show the queue")
    async def queue(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        embed = discord.Embed(title="Queue", description="1. Everlong")
        embed.add_field(name="Up next", value="My Hero")
        await interaction.followup.send(embed=embed, view=QueueView())

    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        titles = ["Everlong", "Everybody Hurts", "Hero"]
        return [app_commands.Choice(name=t, value=t.lower()) for t in titles if t.lower().startswith(current)]

    @tree.command(name="play", description="Play a song")
    @app_commands.autocomplete(query=complete)
    async def play(interaction: discord.Interaction, query: str) -> None:
        await interaction.response.send_message(f"playing {query}")

    @tree.command(name="feedback", description="Tell us")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FeedbackModal())

    @tree.command(name="pick", description="Pick a song")
    async def pick(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pick one", view=PickView())

    @tree.command(name="inspect", description="Who is that")
    async def inspect(interaction: discord.Interaction, member: discord.Member) -> None:
        await interaction.response.send_message(f"{member.name} has {len(member.roles)} roles")

    dj = app_commands.Group(name="dj", description="DJ tools")

    @dj.command(name="volume", description="Set the volume")
    async def volume(interaction: discord.Interaction, level: app_commands.Range[int, 0, 200]) -> None:
        await interaction.response.send_message(f"volume {level}")

    tree.add_command(dj)

    @tree.command(name="admin", description="Admins only")
    @app_commands.default_permissions(manage_guild=True)
    async def admin(interaction: discord.Interaction) -> None:
        report = discord.File(io.BytesIO(b"report"), filename="report.txt")
        await interaction.response.send_message("admin ok", file=report)


@contextlib.asynccontextmanager
async def music_bot(
    fake: FakeDiscord, guild: FakeGuild
) -> AsyncIterator[tuple[FakeBot, commands.Bot, dict[str, object]]]:
    """A connected commands.Bot in ``guild`` whose commands are synced to the fake as guild commands."""
    fake_bot = fake.add_bot(name="Chorus")
    await fake.add_bot_to_guild(fake_bot, guild.id)
    bot = make_bot()
    seen: dict[str, object] = {}
    add_music_commands(bot, seen)
    async with ready(bot, fake_bot.token):
        bot.tree.copy_global_to(guild=discord.Object(guild.id))
        await bot.tree.sync(guild=discord.Object(guild.id))
        yield fake_bot, bot, seen


def in_text_channel(guild: FakeGuild, user: FakeUser) -> dict[str, Any]:
    """Where a command is sent from: ``user`` in ``guild``'s text channel."""
    return {"guild_id": guild.id, "channel_id": guild.text_channel_id, "user": user}


@pytest.mark.asyncio
async def test_slash_command_ephemeral_reply_and_edit(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    user = fake.add_user(name="alice")
    async with music_bot(fake, guild) as (fake_bot, _bot, seen):
        registered = {c["name"]: c["id"] for c in fake.get_commands(fake_bot.client_id, guild.id)}
        inter = await fake.send_command(
            fake_bot,
            **in_text_channel(guild, user),
            name="echo",
            options=[{"name": "text", "type": 3, "value": "foo"}, {"name": "times", "value": 3}],
        )
        assert inter.data["id"] == registered["echo"]
        assert inter.data["guild_id"] == str(guild.id)
        assert inter.data["options"][1] == {"name": "times", "type": 4, "value": 3}  # type from the schema
        response = await inter.wait_for_response(timeout=STEP)
        assert response["type"] == 4
        message = await inter.wait_for_message(lambda m: "(edited)" in m.content, timeout=STEP)
        assert inter.ephemeral and message.ephemeral
        assert inter.text == "echo: foo (edited)"
        assert [e["content"] for e in message.edits] == ["echo: foo (edited)"]
        await until(lambda: "original" in seen)
        assert seen["original"] == "echo: foo (edited)"
        assert seen["times"] == 3
        permissions = seen["permissions"]
        assert (
            isinstance(permissions, discord.Permissions)
            and permissions.connect
            and not permissions.administrator
        )
        assert isinstance(seen["app_permissions"], discord.Permissions)
        assert guild.members[user.id].roles == []

        # A second callback on the same interaction is refused like Discord does.
        async with aiohttp.ClientSession() as http:
            url = f"{fake.api_base}/interactions/{inter.id}/{inter.token}/callback"
            async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
                assert resp.status == 400
                assert (await resp.json())["code"] == 40060
        assert fake.requests[-1].client_id == fake_bot.client_id

        # A user option is resolved into a Member; default_member_permissions hide /admin.
        inspect = await fake.send_command(
            fake_bot,
            **in_text_channel(guild, user),
            name="inspect",
            options={"member": user.id},
        )
        assert inspect.data["resolved"]["users"][str(user.id)]["username"] == "alice"
        assert (await inspect.wait_for_message(timeout=STEP)).content == "alice has 1 roles"
        with pytest.raises(PermissionError):
            await fake.send_command(fake_bot, **in_text_channel(guild, user), name="admin")
        boss = fake.add_user(name="boss")
        fake.add_member(guild.id, boss, permissions=int(discord.Permissions(manage_guild=True).value))
        admin = await fake.send_command(fake_bot, **in_text_channel(guild, boss), name="admin")
        reply = await admin.wait_for_message(timeout=STEP)
        assert reply.text == "admin ok"
        assert [(a["filename"], a["size"]) for a in reply.attachments] == [("report.txt", 6)]
        assert not admin.ephemeral


@pytest.mark.asyncio
async def test_defer_followup_embed_and_button(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    user = fake.add_user()
    async with music_bot(fake, guild) as (fake_bot, _bot, _seen):
        inter = await fake.send_command(fake_bot, **in_text_channel(guild, user), name="queue")
        assert (await inter.wait_for_response(timeout=STEP))["type"] == 5
        message = await inter.wait_for_message(timeout=STEP)
        # The first followup after a defer fills in the "thinking..." original.
        assert inter.original is message and inter.followups == [message]
        assert not message.loading and not message.ephemeral
        assert message.text == "Queue\n1. Everlong\nUp next\nMy Hero"
        assert message.buttons == [
            ("queue:next", "Next", None, False),
            ("queue:stop", "Stop", None, False),
            (None, "Docs", "https://example.invalid/docs", False),
        ]

        click = await fake.click_button(fake_bot, message, "queue:next", user=user)
        assert (await click.wait_for_response(timeout=STEP))["type"] == 7
        assert click.original is message
        assert message.content == "page 2"
        assert message.buttons[0].disabled
        assert message.text.startswith("page 2\nQueue")
        with pytest.raises(ValueError, match="disabled"):
            await fake.click_button(fake_bot, message, "queue:next", user=user)

        stop = await fake.click_button(fake_bot, message, "queue:stop", user=user)
        assert (await stop.wait_for_response(timeout=STEP))["type"] == 6
        await until(lambda: message.content == "stopped")
        assert message.embeds == [] and message.components == []
        with pytest.raises(ValueError, match="no component"):
            await fake.click_button(fake_bot, message, "queue:stop", user=user)


@pytest.mark.asyncio
async def test_autocomplete_select_and_modal(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    user = fake.add_user()
    async with music_bot(fake, guild) as (fake_bot, _bot, _seen):
        where = in_text_channel(guild, user)
        auto = await fake.send_autocomplete(
            fake_bot, **where, name="play", focused="query", options={"query": "ever"}
        )
        assert auto.data["options"] == [{"name": "query", "type": 3, "value": "ever", "focused": True}]
        assert (await auto.wait_for_response(timeout=STEP))["type"] == 8
        assert auto.choices == [
            {"name": "Everlong", "value": "everlong"},
            {"name": "Everybody Hurts", "value": "everybody hurts"},
        ]

        volume = await fake.send_command(
            fake_bot, **where, name="dj", subcommand="volume", options={"level": 150}
        )
        assert volume.data["options"] == [
            {"name": "volume", "type": 1, "options": [{"name": "level", "type": 4, "value": 150}]}
        ]
        assert (await volume.wait_for_message(timeout=STEP)).text == "volume 150"

        pick = await fake.send_command(fake_bot, **where, name="pick")
        message = await pick.wait_for_message(timeout=STEP)
        menu, users = message.selects
        assert (menu.custom_id, menu.type, menu.options) == (
            "pick:song",
            3,
            [("Song A", "a"), ("Song B", "b")],
        )
        assert (users.custom_id, users.type) == ("pick:user", 5)
        with pytest.raises(ValueError, match="not options"):
            await fake.select(fake_bot, message, "pick:song", ["z"], user=user)
        for_user = await fake.select(fake_bot, message, "pick:user", [str(user.id)], user=user)
        assert for_user.data["component_type"] == 5 and str(user.id) in for_user.data["resolved"]["users"]
        assert (await for_user.wait_for_message(timeout=STEP)).text == f"for {user.name}"
        chosen = await fake.select(fake_bot, message, "pick:song", ["b"], user=user)
        assert (await chosen.wait_for_response(timeout=STEP))["type"] == 7
        assert message.content == "picked b" and message.components == []

        opened = await fake.send_command(fake_bot, **where, name="feedback")
        assert (await opened.wait_for_response(timeout=STEP))["type"] == 9
        assert opened.modal is not None and opened.modal["title"] == "Feedback"
        with pytest.raises(ValueError, match="required"):
            await fake.submit_modal(fake_bot, interaction=opened, values={})
        submitted = await fake.submit_modal(fake_bot, interaction=opened, values={"feedback:text": "great"})
        reply = await submitted.wait_for_message(timeout=STEP)
        assert reply.text == "thanks: great" and submitted.ephemeral
        assert submitted.data["components"][0]["components"][0]["value"] == "great"


@pytest.mark.asyncio
async def test_channel_and_dm_messages(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    user = fake.add_user(name="bob")
    async with music_bot(fake, guild) as (fake_bot, bot, _seen):
        channel = bot.get_channel(guild.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send(
            "Now playing: Everlong", embed=discord.Embed(title="Everlong"), view=QueueView()
        )
        recorded = await fake.wait_for_channel_message(
            guild.text_channel_id, lambda m: "Now playing" in m.text
        )
        assert recorded.id == sent.id and recorded.text == "Now playing: Everlong\nEverlong"
        assert recorded.author_id == fake_bot.client_id
        click = await fake.click_button(fake_bot, recorded, "queue:next", user=user)
        await click.wait_for_response(timeout=STEP)
        assert recorded.content == "page 2"
        await sent.edit(content="Paused")
        assert recorded.content == "Paused"
        await sent.delete()
        assert recorded.deleted
        upload = discord.File(io.BytesIO(b"abc"), filename="log.txt")
        with_file = await channel.send("log", file=upload)
        assert [(a.filename, a.size) for a in with_file.attachments] == [("log.txt", 3)]
        assert fake.requests[-1].json is not None and fake.requests[-1].json["content"] == "log"

        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("")
        assert empty.value.code == 50006
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035 and "2000" in str(too_long.value)

        fake.reject_messages(guild.text_channel_id)
        with pytest.raises(discord.Forbidden) as rejected:
            await channel.send("hello")
        assert rejected.value.code == 50001
        fake.accept_messages(guild.text_channel_id)
        fake.deny_bot_permissions(guild.id, fake_bot, guild.text_channel_id, int(Permission.SEND_MESSAGES))
        with pytest.raises(discord.Forbidden) as missing:
            await channel.send("hello")
        assert missing.value.code == 50013

        fetched = await bot.fetch_user(user.id)
        assert fetched.name == "bob"
        dm = await fetched.create_dm()
        await dm.send("your song ended")
        assert (await fake.wait_for_dm(user)).content == "your song ended"
        assert fake.dm_channel_id(fake_bot, user) == dm.id
        fake.block_dms(user)
        with pytest.raises(discord.Forbidden) as blocked:
            await dm.send("again")
        assert blocked.value.code == 50007


class _VoiceRecorder(discord.VoiceProtocol):
    """A VoiceProtocol like wavelink's Player: joins by op 4 and records the two voice events."""

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.state: dict[str, object] | None = None
        self.server: dict[str, object] | None = None
        self.ready = asyncio.Event()

    async def on_voice_state_update(self, data: Any) -> None:
        self.state = dict(data)

    async def on_voice_server_update(self, data: Any) -> None:
        self.server = dict(data)
        self.ready.set()

    async def connect(
        self, *, timeout: float, reconnect: bool, self_deaf: bool = False, self_mute: bool = False
    ) -> None:
        assert isinstance(self.channel, discord.VoiceChannel)
        await self.channel.guild.change_voice_state(channel=self.channel, self_deaf=True)
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def disconnect(self, *, force: bool) -> None:
        assert isinstance(self.channel, discord.VoiceChannel)
        await self.channel.guild.change_voice_state(channel=None)
        self.cleanup()


@pytest.mark.asyncio
async def test_voice_states_are_answered_and_shared(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    bot_a, bot_b, bot_c = fake.add_bot(name="a"), fake.add_bot(name="b"), fake.add_bot(name="c")
    for fake_bot in (bot_a, bot_b, bot_c):
        await fake.add_bot_to_guild(fake_bot, guild.id)
    human = fake.add_user(name="listener")
    client_a, client_b, client_c = make_bot(), make_bot(), make_bot()
    async with ready(client_a, bot_a.token), ready(client_b, bot_b.token):
        guild_a, guild_b = client_a.get_guild(guild.id), client_b.get_guild(guild.id)
        assert guild_a is not None and guild_b is not None and guild_a.me is not None
        channel = guild_a.get_channel(guild.voice_channel_id)
        assert isinstance(channel, discord.VoiceChannel)

        b_sees_a = client_b.wait_for(
            "voice_state_update", check=lambda m, *_: m.id == bot_a.client_id, timeout=STEP
        )
        voice = await channel.connect(cls=_VoiceRecorder, timeout=STEP)
        assert isinstance(voice, _VoiceRecorder)
        assert voice.state is not None and voice.server is not None
        assert voice.state["channel_id"] == str(channel.id) and voice.state["self_deaf"] is True
        assert voice.state["session_id"] == client_a.ws.session_id
        assert voice.server["guild_id"] == str(guild.id) and voice.server["endpoint"] == fake.voice_endpoint
        assert guild_a.me.voice is not None and guild_a.me.voice.channel == channel
        member, before, after = await b_sees_a
        assert before.channel is None and after.channel is not None and after.channel.id == channel.id
        assert member.id == bot_a.client_id
        assert fake.voice_channel_of(guild.id, bot_a.client_id) == channel.id

        # A human joins: both bots hear it; a command sees interaction.user.voice.
        a_sees_human = client_a.wait_for(
            "voice_state_update", check=lambda m, *_: m.id == human.id, timeout=STEP
        )
        await fake.set_user_voice(guild.id, human.id, channel.id, user=human)
        await a_sees_human
        human_state = guild_b._voice_state_for(human.id)
        assert (
            human_state is not None
            and human_state.channel is not None
            and human_state.channel.id == channel.id
        )
        assert fake.users_in_voice(guild.id, channel.id) == {bot_a.client_id, human.id}

        # A bot connecting later gets the voice states in GUILD_CREATE.
        async with ready(client_c, bot_c.token):
            guild_c = client_c.get_guild(guild.id)
            assert guild_c is not None
            for user_id in (bot_a.client_id, human.id):
                state = guild_c._voice_state_for(user_id)
                assert state is not None and state.channel is not None and state.channel.id == channel.id

        b_sees_leave = client_b.wait_for(
            "voice_state_update",
            check=lambda m, _b, a: m.id == bot_a.client_id and a.channel is None,
            timeout=STEP,
        )
        await voice.disconnect(force=False)
        await b_sees_leave
        assert fake.voice_channel_of(guild.id, bot_a.client_id) is None
        assert guild_b._voice_state_for(bot_a.client_id) is None


@pytest.mark.asyncio
async def test_interaction_user_voice(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    user = fake.add_user()
    async with music_bot(fake, guild) as (fake_bot, _bot, seen):
        await fake.set_user_voice(guild.id, user.id, guild.voice_channel_id)
        inter = await fake.send_command(
            fake_bot,
            **in_text_channel(guild, user),
            name="echo",
            options={"text": "hi"},
        )
        await inter.wait_for_response(timeout=STEP)
        await until(lambda: "original" in seen)  # the handler is done
        voice = seen["voice"]
        assert isinstance(voice, discord.VoiceState)
        assert voice.channel is not None and voice.channel.id == guild.voice_channel_id


@pytest.mark.asyncio
async def test_channels_roles_and_permission_denial(fake: FakeDiscord) -> None:
    fake_bot, guild = await bot_in_a_guild(fake)
    client = make_bot()
    async with ready(client, fake_bot.token):
        dguild = client.get_guild(guild.id)
        assert dguild is not None and dguild.me is not None

        created = client.wait_for("guild_channel_create", timeout=STEP)
        stage = fake.add_voice_channel(guild.id, "Stage 2")
        assert (await created).id == stage
        channel = dguild.get_channel(stage)
        assert isinstance(channel, discord.VoiceChannel)
        me = dguild.me
        assert channel.permissions_for(me).connect and channel.permissions_for(me).speak

        updated = client.wait_for("guild_channel_update", timeout=STEP)
        fake.deny_bot_permissions(guild.id, fake_bot, stage, int(Permission.CONNECT | Permission.SPEAK))
        await updated
        perms = channel.permissions_for(me)
        assert not perms.connect and not perms.speak and perms.view_channel
        assert guild.permissions_of(fake_bot.client_id, stage) & Permission.CONNECT == 0

        # Discord ignores a join it would not allow: no VOICE_STATE_UPDATE comes back.
        await dguild.change_voice_state(channel=channel)
        await fake.drain()
        await asyncio.sleep(0.05)
        assert fake.voice_state_updates[-1].channel_id == stage
        assert fake.voice_channel_of(guild.id, fake_bot.client_id) is None
        assert me.voice is None

        role_created = client.wait_for("guild_role_create", timeout=STEP)
        dj = fake.add_role(guild.id, "DJ", permissions=int(Permission.MOVE_MEMBERS))
        assert (await role_created).id == dj
        member_updated = client.wait_for("member_update", timeout=STEP)
        fake.add_member(guild.id, fake_bot, roles=[dj])
        await member_updated
        assert [r.id for r in me.roles] == [guild.id, dj]
        assert me.guild_permissions.move_members

        text = fake.add_text_channel(guild.id, "music-log")
        await fake.drain()
        assert isinstance(dguild.get_channel(text), discord.TextChannel)


# ---------------------------------------------------------------------------- sharding

SHARD_WAIT = 30.0  # generous: a shard's launch is one more handshake on a busy machine


class _ShardedClient(_NoIdentifyWait, discord.AutoShardedClient):
    pass


def make_sharded_client(shard_count: int | None = None) -> discord.AutoShardedClient:
    return _ShardedClient(shard_count=shard_count, **_client_options())


@pytest.mark.asyncio
async def test_a_bot_over_the_shard_limit_must_shard(fake: FakeDiscord) -> None:
    """Unsharded: close 4011. Sharded as /gateway/bot recommends: each shard sees its guilds."""
    fake.max_guilds_per_shard = 2
    bot = fake.add_bot()
    guilds = [fake.add_guild(shard=(index % 2, 2)) for index in range(4)]
    for guild in guilds:
        await fake.add_bot_to_guild(bot, guild.id)

    plain = make_client()
    async with running(plain, bot.token) as task:
        with pytest.raises(discord.ConnectionClosed) as closed:
            await asyncio.wait_for(task, SHARD_WAIT)
    assert closed.value.code == 4011
    assert (bot.sharding_required_closes, bot.identify_count) == (1, 0)

    client = make_sharded_client()  # shard_count None: discord.py asks GET /gateway/bot
    async with ready(client, bot.token, timeout=SHARD_WAIT):
        assert client.shard_count == 2
        assert any(r.path == "/gateway/bot" for r in fake.requests)
        assert sorted(bot.identify_shards, key=str) == [(0, 2), (1, 2)]
        assert {g.id for g in client.guilds} == {g.id for g in guilds}
        for guild in client.guilds:
            assert guild.shard_id == shard_of(guild.id, 2)
        assert set(fake.shard_sessions(bot)) == {0, 1}


@pytest.mark.asyncio
async def test_each_shard_gets_its_own_guild_events_voice_and_interactions(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    bot.shards = 2
    on_zero, on_one = fake.add_guild(shard=(0, 2)), fake.add_guild(shard=(1, 2))
    await fake.add_bot_to_guild(bot, on_zero.id)
    client = make_sharded_client()
    async with ready(client, bot.token, timeout=SHARD_WAIT):
        sessions = fake.shard_sessions(bot)
        # A guild joined later reaches the shard that holds it, once (no duplicate on shard 0).
        joined = client.wait_for("guild_join", timeout=SHARD_WAIT)
        await fake.add_bot_to_guild(bot, on_one.id)
        assert (await joined).id == on_one.id
        assert client.get_guild(on_one.id) is not None

        # Voice: answered on the guild's shard, with that shard's session id.
        guild = client.get_guild(on_one.id)
        assert guild is not None
        channel = guild.get_channel(on_one.voice_channel_id)
        assert isinstance(channel, discord.VoiceChannel)
        voice = await channel.connect(cls=_VoiceRecorder, timeout=SHARD_WAIT)
        assert isinstance(voice, _VoiceRecorder) and voice.state is not None
        assert voice.state["session_id"] == sessions[1]

        # An op 4 sent on the wrong shard is not acted on.
        await client._get_websocket(shard_id=0).voice_state(on_one.id, None)
        await fake._wait_until(lambda: bool(fake.misrouted_voice_updates), SHARD_WAIT, "the misrouted op 4")
        assert fake.misrouted_voice_updates[0].guild_id == on_one.id
        assert fake.voice_channel_of(on_one.id, bot.client_id) == on_one.voice_channel_id

        # One shard's session invalidated: only that shard identifies again.
        ready_again = client.wait_for("shard_ready", check=lambda shard_id: shard_id == 1, timeout=SHARD_WAIT)
        await fake.invalidate_session(bot, shard=1)
        await ready_again
        assert bot.identify_shards[2:] == [(1, 2)]
        assert fake.shard_sessions(bot)[0] == sessions[0]


@pytest.mark.asyncio
async def test_gateway_bot_and_invalid_shards(fake: FakeDiscord) -> None:
    fake.max_guilds_per_shard = 3
    bot = fake.add_bot()
    for _ in range(7):
        await fake.add_bot_to_guild(bot, fake.add_guild().id)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {bot.token}"}) as http:
        async with http.get(f"{fake.api_base}/gateway/bot") as response:
            body = await response.json()
        assert body["shards"] == 3  # ceil(7 / 3)
        assert body["session_start_limit"]["max_concurrency"] == 1
        bot.shards = 5
        async with http.get(f"{fake.api_base}/gateway/bot") as response:
            assert (await response.json())["shards"] == 5

        for shard in ([2, 2], [0], "0", [-1, 2]):
            async with http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
                assert (await ws.receive_json(timeout=SHARD_WAIT))["op"] == 10
                await ws.send_json({"op": 2, "d": {"token": bot.token, "intents": 0, "shard": shard}})
                message = await ws.receive(timeout=SHARD_WAIT)
                assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4010, shard
    assert bot.identify_count == 0
