"""Self-tests of the fake Discord, driven by real discord.py clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from .discord import FakeDiscord, make_fake_token

STEP = 3.0  # seconds any single wait may take


@pytest_asyncio.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        monkeypatch.setattr(Route, "BASE", server.api_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
        yield server


class _Client(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before every non-initial IDENTIFY; not against the fake."""


def make_client() -> discord.Client:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    return _Client(
        intents=intents, member_cache_flags=discord.MemberCacheFlags.none(), guild_ready_timeout=0.1
    )


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
    async with running(client_a, bot_a.token), running(client_b, bot_b.token):
        await asyncio.wait_for(asyncio.gather(client_a.wait_until_ready(), client_b.wait_until_ready()), STEP)
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
    async with running(client, bot.token):
        await asyncio.wait_for(client.wait_until_ready(), STEP)
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
    async with running(client, bot.token):
        await asyncio.wait_for(client.wait_until_ready(), STEP)
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
async def test_non_resumable_disconnect_identifies_again(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    guild = fake.add_guild()
    await fake.add_bot_to_guild(bot, guild.id)
    client = make_client()
    async with running(client, bot.token):
        await asyncio.wait_for(client.wait_until_ready(), STEP)
        first_session = client.ws.session_id
        await fake.disconnect(bot, code=4009)
        await fake.wait_for_identify(bot, count=2, timeout=STEP)
        assert bot.resume_count == 0
        await asyncio.wait_for(client.wait_for("ready"), STEP)
        assert client.ws.session_id != first_session
        assert [g.id for g in client.guilds] == [guild.id]
        assert fake.is_connected(bot)


@pytest.mark.asyncio
async def test_revoked_and_bad_tokens(fake: FakeDiscord) -> None:
    bot = fake.add_bot()
    client = make_client()
    async with running(client, bot.token) as task:
        await asyncio.wait_for(client.wait_until_ready(), STEP)
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
    async with running(client, bot.token), aiohttp.ClientSession() as http:
        await asyncio.wait_for(client.wait_until_ready(), STEP)
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
    bot = fake.add_bot()
    guild = fake.add_guild()
    await fake.add_bot_to_guild(bot, guild.id)
    client = make_client()
    async with running(client, bot.token):
        await asyncio.wait_for(client.wait_until_ready(), STEP)
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
