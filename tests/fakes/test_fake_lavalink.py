"""Self-test of the fake Lavalink server, driven by the real wavelink ``Node``/``Player`` code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import discord
import pytest
import pytest_asyncio
import wavelink
import wavelink.backoff

from tests.fakes.lavalink import FakeLavalink, FakeSession

WAIT = 2.0  # seconds any single expected event may take
BOT_A = 111_111_111_111_111_111
BOT_B = 222_222_222_222_222_222
GUILD = 333_333_333_333_333_333
CHANNEL = 444_444_444_444_444_444


class Bot(discord.Client):
    """A never-logged-in client with a known user id that records every wavelink event."""

    def __init__(self, user_id: int) -> None:
        super().__init__(intents=discord.Intents.none())
        self._connection.user = discord.ClientUser(
            state=self._connection,
            data={
                "id": str(user_id),
                "username": f"bot{user_id}",
                "discriminator": "0",
                "avatar": None,
                "global_name": None,
                "bot": True,
            },
        )
        self.events: list[tuple[str, Any]] = []  # (name without "wavelink_", first argument)
        self._consumed: set[int] = set()
        self._arrived = asyncio.Event()

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        if event.startswith("wavelink_"):
            self.events.append((event.removeprefix("wavelink_"), args[0] if args else None))
            self._arrived.set()
        super().dispatch(event, *args, **kwargs)

    async def wait_event(self, name: str, check: Callable[[Any], bool] = lambda _: True) -> Any:
        """The oldest not yet awaited ``on_wavelink_<name>`` payload passing ``check``."""
        async with asyncio.timeout(WAIT):
            while True:
                for index, (event, payload) in enumerate(self.events):
                    if index not in self._consumed and event == name and check(payload):
                        self._consumed.add(index)
                        return payload
                self._arrived.clear()
                await self._arrived.wait()


ConnectNode = Callable[..., Awaitable[wavelink.Node]]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeLavalink]:
    async with FakeLavalink() as server:
        yield server


@pytest_asyncio.fixture
async def bots() -> AsyncIterator[dict[int, Bot]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {uid: await stack.enter_async_context(Bot(uid)) for uid in (BOT_A, BOT_B)}


@pytest_asyncio.fixture
async def connect(fake: FakeLavalink, bots: dict[int, Bot]) -> AsyncIterator[ConnectNode]:
    """Connect a real wavelink Node to the fake (waits for ``ready``); closes every node afterwards."""
    created: list[wavelink.Node] = []

    async def _connect(user_id: int = BOT_A, *, wait: bool = True, **options: Any) -> wavelink.Node:
        options.setdefault("password", fake.password)
        node = wavelink.Node(uri=fake.uri, identifier=f"bot{user_id}:main", client=bots[user_id], **options)
        created.append(node)
        await wavelink.Pool.connect(nodes=[node])
        if wait:
            await bots[user_id].wait_event("node_ready", lambda p: p.node is node)
        return node

    yield _connect

    pool_nodes: dict[str, wavelink.Node] = vars(wavelink.Pool)["_Pool__nodes"]  # the process-global registry
    everything = [*created, *(n for n in pool_nodes.values() if all(n is not c for c in created))]
    for node in everything:  # (Node defines __eq__ but no __hash__)
        await node.close(eject=True)
        await node._session.close()  # Node.close() leaves its aiohttp session open
    pool_nodes.clear()


@pytest.fixture
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    """wavelink's reconnect backoff waits up to 2 s (then longer); make it 50 ms."""
    monkeypatch.setattr(wavelink.backoff.Backoff, "calculate", lambda self: 0.05)


def _session(fake: FakeLavalink, node: wavelink.Node) -> FakeSession:
    assert node.session_id is not None
    return fake.sessions[node.session_id]


def _player_path(node: wavelink.Node, guild_id: int = GUILD) -> str:
    return f"v4/sessions/{node.session_id}/players/{guild_id}"


async def _until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------- sessions


@pytest.mark.asyncio
async def test_nodes_of_two_bots_get_their_own_sessions(fake: FakeLavalink, connect: ConnectNode) -> None:
    node_a = await connect(BOT_A)
    node_b = await connect(BOT_B)

    assert node_a.status is wavelink.NodeStatus.CONNECTED
    assert node_a.session_id != node_b.session_id
    session_a, session_b = fake.session_for_user(BOT_A), fake.session_for_user(BOT_B)
    assert session_a is not None
    assert session_b is not None
    assert (session_a.session_id, session_b.session_id) == (node_a.session_id, node_b.session_id)
    assert session_a.client_name.startswith("Wavelink/")
    # wavelink enables resuming right after "ready", then reads /v4/info
    assert session_a.resuming
    assert session_a.timeout == 60
    patches = fake.requests_matching("PATCH", f"/v4/sessions/{node_a.session_id}")
    assert [(r.json, r.user_id, r.status) for r in patches] == [
        ({"resuming": True, "timeout": 60}, BOT_A, 200)
    ]
    # a stats op follows "ready"
    assert [op["op"] for op in session_a.sent[:2]] == ["ready", "stats"]


@pytest.mark.asyncio
async def test_wrong_password_is_rejected(fake: FakeLavalink, bots: dict[int, Bot]) -> None:
    node = wavelink.Node(uri=fake.uri, password="wrong", identifier="bad", client=bots[BOT_A], retries=0)
    try:
        with pytest.raises(wavelink.AuthorizationFailedException):
            await node._connect(client=bots[BOT_A])
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{fake.uri}/v4/info", headers={"Authorization": "wrong"}) as resp,
        ):
            assert resp.status == 401
            assert (await resp.json())["status"] == 401
    finally:
        await node._session.close()
    assert fake.sessions == {}


# ---------------------------------------------------------------------------- loading tracks


@pytest.mark.asyncio
async def test_search_returns_registered_tracks(fake: FakeLavalink, connect: ConnectNode) -> None:
    everlong = fake.add_track(identifier="eVTXPUF4Oz4", title="Foo Fighters - Everlong", length_ms=250_000)
    fake.add_track(identifier="abc", title="Food Song", author="Chef")
    fake.add_track(identifier="xyz", title="Something else")
    node = await connect()

    # Playable.search adds wavelink's default prefix, "ytmsearch:"
    found = await wavelink.Playable.search("foo", node=node)
    assert isinstance(found, list)
    assert [t.title for t in found] == ["Foo Fighters - Everlong", "Food Song"]
    first = found[0]
    assert (first.identifier, first.author, first.length, first.source) == (
        "eVTXPUF4Oz4",
        "Artist",
        250_000,
        "youtube",
    )
    assert first.encoded == everlong["encoded"]
    assert first.uri == "https://www.youtube.com/watch?v=eVTXPUF4Oz4"
    assert not first.is_stream
    assert first.is_seekable

    # an explicit prefix needs source=None, otherwise wavelink sends "ytmsearch:ytsearch:foo"
    prefixed = await wavelink.Playable.search("ytsearch:foo", source=None, node=node)
    assert [t.identifier for t in prefixed] == ["eVTXPUF4Oz4", "abc"]
    assert await wavelink.Playable.search("ytsearch:foo", node=node) == []
    assert fake.requests_matching("GET", "/v4/loadtracks")[-1].query == {
        "identifier": "ytmsearch:ytsearch:foo"
    }

    # a registered URL or identifier loads exactly that track
    by_url = await wavelink.Playable.search("https://www.youtube.com/watch?v=eVTXPUF4Oz4", node=node)
    assert [t.identifier for t in by_url] == ["eVTXPUF4Oz4"]
    by_id = await wavelink.Pool.fetch_tracks("abc", node=node)
    assert [t.title for t in by_id] == ["Food Song"]

    # encoded tracks decode back
    decoded = await node.send("GET", path="v4/decodetrack", params={"encodedTrack": everlong["encoded"]})
    assert decoded["info"]["title"] == "Foo Fighters - Everlong"
    batch = await node.send("POST", path="v4/decodetracks", data=[everlong["encoded"]])
    assert [t["info"]["identifier"] for t in batch] == ["eVTXPUF4Oz4"]


@pytest.mark.asyncio
async def test_playlist_url_returns_a_playlist(fake: FakeLavalink, connect: ConnectNode) -> None:
    tracks = [fake.add_track(identifier=f"t{i}", title=f"Track {i}", source="soundcloud") for i in range(3)]
    url = "https://soundcloud.com/someone/sets/mix"
    fake.add_playlist(url, "My Mix", tracks, selected=1)
    node = await connect()

    result = await wavelink.Playable.search(url, node=node)

    assert isinstance(result, wavelink.Playlist)
    assert result.name == "My Mix"
    assert result.selected == 1
    assert [t.title for t in result.tracks] == ["Track 0", "Track 1", "Track 2"]
    assert result.tracks[0].uri == "https://soundcloud.com/t0"
    assert result.tracks[0].playlist is not None


@pytest.mark.asyncio
async def test_empty_and_error_load_types(fake: FakeLavalink, connect: ConnectNode) -> None:
    fake.add_track(identifier="a", title="Alpha")
    fake.fail_load("ytmsearch:boom", "This video is unavailable")
    node = await connect()

    assert await wavelink.Playable.search("nothing like it", node=node) == []
    assert fake.load("https://example.com/unknown.mp3") == {"loadType": "empty", "data": {}}

    with pytest.raises(wavelink.LavalinkLoadException) as caught:
        await wavelink.Playable.search("boom", node=node)
    assert caught.value.error == "This video is unavailable"
    assert caught.value.severity == "common"


@pytest.mark.asyncio
async def test_info_stats_and_version(fake: FakeLavalink, connect: ConnectNode) -> None:
    node = await connect()

    info = await node.fetch_info()
    assert info.version.semver == "4.2.2"
    assert (info.version.major, info.version.minor, info.version.patch) == (4, 2, 2)
    assert info.plugins == []
    assert "timescale" in info.filters
    stats = await node.fetch_stats()
    assert stats.players == 0
    assert stats.memory.used > 0
    assert await node.fetch_version() == "4.2.2"
    assert await node.fetch_players() == []
    assert await node.fetch_player_info(GUILD) is None  # the fake answers 404 "Player not found"


# ---------------------------------------------------------------------------- players via REST


@pytest.mark.asyncio
async def test_patch_starts_a_track_and_the_clock_ends_it(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode
) -> None:
    track = fake.add_track(identifier="song", title="Song", length_ms=180_000)
    node = await connect()
    bot = bots[BOT_A]

    body = {"track": {"encoded": track["encoded"], "userData": {"requester": 42}}, "volume": 50}
    answer = await node.send("PATCH", path=_player_path(node), data=body)

    assert answer["guildId"] == str(GUILD)
    assert answer["track"]["encoded"] == track["encoded"]
    assert answer["volume"] == 50
    assert answer["paused"] is False
    assert answer["state"]["connected"] is True
    started = await bot.wait_event("track_start")
    assert started.track.encoded == track["encoded"]
    assert started.track.extras.requester == 42
    assert started.player is None  # no wavelink.Player for that guild on this node

    player = fake.get_player(GUILD)
    assert player is not None
    assert player.patches == [body]
    await fake.advance(100_000)
    update = await bot.wait_event("player_update", lambda p: p.position == 100_000)
    assert update.connected is True
    assert player.position_ms == 100_000
    assert (await bot.wait_event("stats_update", lambda p: p.players == 1)).playing == 1

    await fake.advance(80_000)
    ended = await bot.wait_event("track_end")
    assert ended.reason == "finished"
    assert ended.track.identifier == "song"
    assert player.track is None
    assert player.position_ms == 0


@pytest.mark.asyncio
async def test_replace_no_replace_stop_seek_pause_and_filters(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode
) -> None:
    one = fake.add_track(identifier="one", title="One", length_ms=60_000)
    two = fake.add_track(identifier="two", title="Two", length_ms=60_000)
    node = await connect()
    bot = bots[BOT_A]
    path = _player_path(node)

    await node.send("PATCH", path=path, data={"track": {"encoded": one["encoded"]}})
    await node.send("PATCH", path=path, data={"track": {"identifier": "two"}, "position": 5_000})
    assert (await bot.wait_event("track_end")).reason == "replaced"
    started = await bot.wait_event("track_start", lambda p: p.track.identifier == "two")
    assert started.track.encoded == two["encoded"]

    # noReplace keeps the playing track
    kept = await node.send(
        "PATCH", path=path, data={"track": {"encoded": one["encoded"]}}, params={"noReplace": "true"}
    )
    assert kept["track"]["info"]["identifier"] == "two"
    assert kept["track"]["info"]["position"] == 5_000

    # seek, pause, volume, filters, endTime
    filters = {"timescale": {"speed": 1.25, "pitch": 1.0, "rate": 1.0}}
    answer = await node.send(
        "PATCH", path=path, data={"position": 30_000, "paused": True, "volume": 70, "filters": filters}
    )
    assert (answer["state"]["position"], answer["paused"], answer["volume"]) == (30_000, True, 70)
    assert answer["filters"] == filters
    await fake.advance(10_000)  # paused: does not move
    player = fake.get_player(GUILD)
    assert player is not None
    assert player.position_ms == 30_000
    await node.send("PATCH", path=path, data={"paused": False, "endTime": 35_000})
    await fake.advance(5_000)
    assert (await bot.wait_event("track_end")).reason == "finished"  # endTime reached

    # stopping
    await node.send("PATCH", path=path, data={"track": {"encoded": one["encoded"]}})
    await node.send("PATCH", path=path, data={"track": {"encoded": None}})
    assert (await bot.wait_event("track_end")).reason == "stopped"
    assert player.track is None

    # seeking with nothing playing is an error, like Lavalink's
    with pytest.raises(wavelink.LavalinkException) as caught:
        await node.send("PATCH", path=path, data={"position": 1})
    assert caught.value.status == 500

    session = _session(fake, node)
    assert [e["type"] for e in session.events()] == [
        "TrackStartEvent",
        "TrackEndEvent",
        "TrackStartEvent",
        "TrackEndEvent",
        "TrackStartEvent",
        "TrackEndEvent",
    ]


@pytest.mark.asyncio
async def test_voice_update_needs_a_channel_id(fake: FakeLavalink, connect: ConnectNode) -> None:
    node = await connect()
    voice = {"token": "tok", "endpoint": "eu.discord.media:443", "sessionId": "vs1"}

    with pytest.raises(wavelink.LavalinkException) as caught:
        await node.send("PATCH", path=_player_path(node), data={"voice": voice})
    assert caught.value.status == 400

    answer = await node.send(
        "PATCH", path=_player_path(node), data={"voice": {**voice, "channelId": str(CHANNEL)}}
    )
    assert answer["voice"]["channelId"] == str(CHANNEL)


@pytest.mark.asyncio
async def test_require_voice_holds_players_without_voice(fake: FakeLavalink, connect: ConnectNode) -> None:
    track = fake.add_track(identifier="v", title="Needs voice")
    fake.require_voice = True
    node = await connect()
    path = _player_path(node)

    answer = await node.send("PATCH", path=path, data={"track": {"encoded": track["encoded"]}})
    assert answer["state"]["connected"] is False
    await fake.advance(1_000)
    player = fake.get_player(GUILD)
    assert player is not None
    assert player.position_ms == 0

    voice = {"token": "t", "endpoint": "e", "sessionId": "s", "channelId": str(CHANNEL)}
    answer = await node.send("PATCH", path=path, data={"voice": voice})
    assert answer["state"]["connected"] is True
    await fake.advance(1_000)
    assert player.position_ms == 1_000


@pytest.mark.asyncio
async def test_server_side_events(fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode) -> None:
    track = fake.add_track(identifier="x", title="X")
    node = await connect()
    bot = bots[BOT_A]
    await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})

    await fake.track_stuck(GUILD, threshold_ms=5_000)
    assert (await bot.wait_event("track_stuck")).threshold == 5_000
    await fake.track_exception(GUILD, message="boom")
    assert (await bot.wait_event("track_exception")).exception["message"] == "boom"
    assert (await bot.wait_event("track_end")).reason == "loadFailed"
    await fake.websocket_closed(GUILD, code=4006)
    assert (await bot.wait_event("websocket_closed")).code is wavelink.DiscordVoiceCloseType.SESSION_INVALID

    await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
    await fake.finish_track(GUILD, reason="cleanup")
    assert (await bot.wait_event("track_end")).reason == "cleanup"
    with pytest.raises(LookupError):
        await fake.finish_track(GUILD)


# ---------------------------------------------------------------------------- a real wavelink.Player


@pytest.mark.asyncio
async def test_wavelink_player_round_trip(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode
) -> None:
    song = fake.add_track(identifier="p1", title="Player Song", length_ms=30_000)
    node = await connect()
    bot = bots[BOT_A]

    async def change_voice_state(**_: Any) -> None:
        return None

    guild = SimpleNamespace(id=GUILD, change_voice_state=change_voice_state)
    channel = SimpleNamespace(id=CHANNEL, guild=guild, members=[])
    player = wavelink.Player(bot, cast(Any, channel), nodes=[node])
    player._guild = cast(Any, guild)  # what VoiceChannel.connect(cls=Player) would set up ...
    node._players[GUILD] = player  # ... and Player.connect()
    await player.on_voice_state_update(
        cast(Any, {"guild_id": str(GUILD), "channel_id": str(CHANNEL), "session_id": "voice-session"})
    )
    player.channel = cast(Any, channel)  # the client cache has no channels
    await player.on_voice_server_update(
        cast(Any, {"guild_id": str(GUILD), "token": "voice-token", "endpoint": "eu.discord.media:443"})
    )
    fake_player = fake.get_player(GUILD, user_id=BOT_A)
    assert fake_player is not None
    # wavelink sends the voice channel id (Lavalink >= 4.2 requires it)
    assert fake_player.voice == {
        "token": "voice-token",
        "endpoint": "eu.discord.media:443",
        "sessionId": "voice-session",
        "channelId": str(CHANNEL),
    }

    [track] = await wavelink.Playable.search("player song", node=node)
    assert track.encoded == song["encoded"]
    await player.play(track, volume=30)
    started = await bot.wait_event("track_start")
    assert started.player is player
    assert player.current == track
    play_patch = fake_player.patches[-1]
    assert play_patch["track"] == {"encoded": song["encoded"], "userData": {}}
    assert fake.requests_matching("PATCH", "/players/")[-1].query == {"noReplace": "False"}

    await player.pause(True)
    await player.seek(10_000)
    await player.set_volume(80)
    assert (fake_player.paused, fake_player.position_ms, fake_player.volume) == (True, 10_000, 80)
    await player.pause(False)

    await fake.advance(20_000)
    ended = await bot.wait_event("track_end")
    assert ended.player is player
    assert ended.reason == "finished"
    await _until(lambda: player.current is None)

    await player.disconnect()
    assert fake.get_player(GUILD) is None
    assert fake.requests_matching("DELETE")[-1].status == 204


# ---------------------------------------------------------------------------- node failures


@pytest.mark.asyncio
async def test_shutdown_node_and_restart(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode, fast_reconnect: None
) -> None:
    node = await connect()
    old_session = node.session_id
    bot = bots[BOT_A]

    await fake.shutdown_node()
    await bot.wait_event("node_disconnected")
    assert node.status is not wavelink.NodeStatus.CONNECTED  # CONNECTING: wavelink retries forever
    assert fake.sessions == {}
    with pytest.raises(aiohttp.ClientConnectionError):
        await node.fetch_info()

    await fake.restart()
    ready = await bot.wait_event("node_ready")
    assert ready.resumed is False  # the old session died with the process
    assert node.status is wavelink.NodeStatus.CONNECTED
    assert node.session_id != old_session
    assert _session(fake, node).user_id == BOT_A


@pytest.mark.asyncio
async def test_shutdown_node_with_no_retries_leaves_node_disconnected(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode
) -> None:
    node = await connect(retries=0)

    await fake.shutdown_node()

    await _until(lambda: node.status is wavelink.NodeStatus.DISCONNECTED)
    assert node.session_id is None


@pytest.mark.asyncio
async def test_graceful_shutdown_goes_unnoticed_by_wavelink(fake: FakeLavalink, connect: ConnectNode) -> None:
    """Pins a wavelink 3.5.2 bug: a close *frame* (1001) kills its reader task with a TypeError and the
    node keeps claiming CONNECTED, with no reconnect.  An abnormal closure (the default) is handled."""
    node = await connect()
    websocket = node._websocket
    assert websocket is not None

    await fake.shutdown_node(graceful=True)

    task = websocket.keep_alive_task
    assert task is not None
    await _until(task.done)
    assert isinstance(task.exception(), TypeError)
    assert node.status is wavelink.NodeStatus.CONNECTED
    assert not websocket.is_connected()


@pytest.mark.asyncio
async def test_dropped_connection_resumes_the_session(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode, fast_reconnect: None
) -> None:
    track = fake.add_track(identifier="r", title="Resume me", length_ms=10_000)
    node = await connect()
    bot = bots[BOT_A]
    session_id = node.session_id
    await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
    await bot.wait_event("track_start")

    await fake.drop_connection(BOT_A)
    await fake.advance(10_000)  # ends while the client is away: queued, replayed on resume

    ready = await bot.wait_event("node_ready")
    assert ready.resumed is True
    assert node.session_id == session_id
    assert (await bot.wait_event("track_end")).reason == "finished"


@pytest.mark.asyncio
async def test_autoclock_moves_time_by_itself(bots: dict[int, Bot]) -> None:
    async with FakeLavalink(autoclock=True) as server:
        track = server.add_track(identifier="short", title="Short", length_ms=1_000)
        node = wavelink.Node(uri=server.uri, password=server.password, identifier="auto", client=bots[BOT_A])
        try:
            await node._connect(client=bots[BOT_A])
            await bots[BOT_A].wait_event("node_ready")
            await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
            assert (await bots[BOT_A].wait_event("track_end")).reason == "finished"
        finally:
            await node.close()
            await node._session.close()


# ---------------------------------------------------------------------------- fault controls


@pytest.mark.asyncio
async def test_a_reserved_port_listens_only_once_started(bots: dict[int, Bot]) -> None:
    server = FakeLavalink()
    port = server.reserve_port()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{port}/version")
        async with server:
            assert server.port == port
            async with http.get(
                f"{server.uri}/version", headers={"Authorization": server.password}
            ) as answer:
                assert answer.status == 200


@pytest.mark.asyncio
async def test_refused_users_and_connection_attempts(fake: FakeLavalink, connect: ConnectNode) -> None:
    fake.refused_users.add(BOT_B)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": fake.password, "User-Id": str(BOT_B), "Client-Name": "test"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{fake.uri}/v4/websocket", headers=headers)
        assert refused.value.status == 503
    await connect(BOT_A)
    async with asyncio.timeout(WAIT):
        await fake.wait_for_attempts(BOT_A, 1)
    assert fake.connection_attempts == {BOT_A: 1, BOT_B: 1}


@pytest.mark.asyncio
async def test_a_server_without_session_patch(bots: dict[int, Bot]) -> None:
    async with FakeLavalink(session_patch=False) as server, aiohttp.ClientSession() as http:
        headers = {"Authorization": server.password}
        async with http.patch(f"{server.uri}/v4/sessions/abc", json={"resuming": True}, headers=headers) as r:
            assert r.status == 404


@pytest.mark.asyncio
async def test_keep_sessions_resumes_without_being_asked(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode, fast_reconnect: None
) -> None:
    fake.keep_sessions = True
    node = await connect(resume_timeout=0)  # never PATCHes the session
    session_id = node.session_id
    await fake.drop_connection(BOT_A)
    ready = await bots[BOT_A].wait_event("node_ready")
    assert ready.resumed is True and node.session_id == session_id
    assert not fake.requests_matching("PATCH", f"/v4/sessions/{session_id}")


@pytest.mark.asyncio
async def test_an_event_without_plugin_info_kills_wavelinks_reader(
    fake: FakeLavalink, connect: ConnectNode
) -> None:
    track = fake.add_track(identifier="m", title="Malformed")
    node = await connect()
    reader = node._websocket.keep_alive_task if node._websocket is not None else None
    assert reader is not None
    fake.omit_plugin_info = True
    await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
    async with asyncio.timeout(WAIT):
        await asyncio.wait({reader})
    assert isinstance(reader.exception(), KeyError)
    assert node.status is wavelink.NodeStatus.CONNECTED  # wavelink does not notice


@pytest.mark.asyncio
async def test_send_raw_delivers_any_op(
    fake: FakeLavalink, bots: dict[int, Bot], connect: ConnectNode
) -> None:
    await connect()
    await fake.send_raw(BOT_A, {"op": "stats", **fake.stats(), "players": 7})
    stats = await bots[BOT_A].wait_event("stats_update", lambda p: p.players == 7)
    assert stats.players == 7


@pytest.mark.asyncio
async def test_drop_next_play_cuts_the_request(fake: FakeLavalink, connect: ConnectNode) -> None:
    track = fake.add_track(identifier="d", title="Dropped")
    node = await connect()
    fake.drop_next_play(user_id=BOT_A)
    with pytest.raises(aiohttp.ClientError):
        await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
    await node.send("PATCH", path=_player_path(node), data={"track": {"encoded": track["encoded"]}})
    player = fake.get_player(GUILD)
    assert player is not None and player.track is not None


@pytest.mark.asyncio
async def test_stall_rest_holds_every_call_until_released(fake: FakeLavalink, connect: ConnectNode) -> None:
    node = await connect()
    fake.stall_rest()
    before = len(fake.requests_matching("GET", "/v4/info"))
    call = asyncio.ensure_future(node.fetch_info())
    await _until(lambda: len(fake.requests_matching("GET", "/v4/info")) > before)  # received, held
    assert not call.done()
    fake.release_rest()
    async with asyncio.timeout(WAIT):
        info = await call
    assert info.version.major == 4
