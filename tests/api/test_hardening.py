"""The HTTP API against bad input from anyone: tokens in names, loose types, oversized bodies sent
without credentials, ids MongoDB cannot hold, a database outage, upstream error text."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from starlette.types import Message

from app.api.main import MAX_BODY_BYTES
from app.bots.status import BotState
from app.db.models import MusicBot, PlayerSnapshot, ServerMusicBot, ServerStatus
from app.settings import Settings
from tests.api.admin_api import ADMIN, ADMIN_TOKEN, running_with_ready, settings_with_admin_api
from tests.fakes.discord import FakeDiscord, make_fake_token
from tests.fleet import RunningApp, running_app, store_bot
from tests.own_database import own_database

Mongo = AsyncMongoClient[dict[str, Any]]
# A token as servers that speak Discord's API without Discord's token shape issue them.
JWT_SHAPED = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk"


@pytest.fixture
def admin_settings(make_settings: Any, fake_discord: FakeDiscord) -> Settings:
    return settings_with_admin_api(make_settings, fake_discord)


def _admin_operations(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path with ids filled in) of every operation the schema says needs the admin token."""
    operations = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            if operation.get("security"):
                operations.append((method.upper(), re.sub(r"\{[a-z_]+\}", "1", path)))
    return operations


async def _call_raw(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> tuple[int, bool]:
    """Call the ASGI app directly with a body that never ends; returns (status, body read at all)."""
    read = False

    async def receive() -> Message:
        nonlocal read
        read = True
        return {"type": "http.request", "body": b"x" * 65_536, "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 1), "server": ("chorus.test", 80),
    }  # fmt: skip
    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), read


async def test_a_token_never_becomes_a_name(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    steady = fake_discord.add_bot(name="Steady")
    newcomer = fake_discord.add_bot(name="Newcomer")
    bots = mongo[admin_settings.mongodb_database][MusicBot.Settings.name]
    async with running_with_ready(admin_settings, mongo, steady) as running:
        texts: list[str] = []
        for name in (newcomer.token, steady.token, f"x {steady.token}", JWT_SHAPED):
            created = await running.http.post(
                "/bots", json={"token": newcomer.token, "name": name}, headers=ADMIN
            )
            texts.append(created.text)
            assert created.status_code == 422, created.text
            (error,) = created.json()["detail"]
            assert error["loc"] == ["body", "name"] and "looks like" in error["msg"]
            renamed = await running.http.patch(
                f"/bots/{steady.client_id}", json={"name": name}, headers=ADMIN
            )
            texts.append(renamed.text)
            assert renamed.status_code == 422 and renamed.json()["detail"][0]["loc"] == ["body", "name"]
        assert await bots.count_documents({}) == 1
        texts.append((await running.http.get("/bots")).text)
        # A token as an unknown key is not echoed in the error's location either.
        odd = await running.http.patch(f"/bots/{steady.client_id}", json={steady.token: 1}, headers=ADMIN)
        texts.append(odd.text)
        assert odd.status_code == 422
    for text in texts:
        for secret in (newcomer.token, steady.token, JWT_SHAPED):
            assert secret not in text


async def test_enabled_is_a_strict_boolean(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot(name="Strict")
    async with running_with_ready(admin_settings, mongo, bot) as running:
        for value in ("yes", "false", 1, 0, None):
            answer = await running.http.patch(
                f"/bots/{bot.client_id}", json={"enabled": value}, headers=ADMIN
            )
            assert answer.status_code == 422, (value, answer.text)
        assert running.manager.get_runner(bot.client_id) is not None  # still running
        answer = await running.http.patch(f"/bots/{bot.client_id}", json={"enabled": False}, headers=ADMIN)
        assert answer.status_code == 200 and answer.json()["status"] == "disabled"


async def test_admin_routes_refuse_before_reading_the_body(
    admin_settings: Settings, fleet_settings: Settings
) -> None:
    async with running_app(admin_settings) as running:
        operations = _admin_operations(running.app)
        assert len(operations) == 6
        huge = {"content-type": "application/json", "content-length": str(50 * 1024 * 1024)}
        for method, path in operations:
            assert await _call_raw(running.app, method, path, huge) == (401, False), (method, path)
            wrong = {**huge, "authorization": "Bearer wrong"}
            assert await _call_raw(running.app, method, path, wrong) == (403, False), (method, path)
            right = {**huge, **{k.lower(): v for k, v in ADMIN.items()}}
            assert await _call_raw(running.app, method, path, right) == (413, False), (method, path)

        # A body streamed without a length is cut off at the limit.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(MAX_BODY_BYTES // 8192 + 4):
                yield b" " * 8192

        streamed = await running.http.post(
            "/bots", content=chunks(), headers={**ADMIN, "content-type": "application/json"}
        )
        assert streamed.status_code == 413 and "limit" in streamed.json()["detail"]
    async with running_app(fleet_settings) as running:  # admin API off: 404, still unread
        for method, path in operations:
            assert await _call_raw(running.app, method, path, {"content-length": "999999999"}) == (404, False)


@pytest.mark.parametrize("bad", [0, -1, 2**63, 2**64, 9_200_000_000_000_000_001])
async def test_ids_outside_snowflakes_are_422_on_every_route(
    bad: int, fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    async with running_app(admin_settings) as running:
        http = running.http
        answers = [
            await http.get(f"/guilds/{bad}/bots"),  # unauthenticated
            await http.post(f"/guilds/{bad}/invite", headers=ADMIN),
            await http.patch(f"/bots/{bad}", json={"enabled": True}, headers=ADMIN),
            await http.delete(f"/bots/{bad}", headers=ADMIN),
            await http.post(f"/bots/{bad}/restart", headers=ADMIN),
            await http.post(f"/bots/{bad}/commands", headers=ADMIN),
            await http.post("/bots/1/commands", json={"guildId": bad}, headers=ADMIN),
        ]
        for answer in answers:
            assert answer.status_code == 422, (answer.request.url, answer.text)
            assert answer.json()["detail"][0]["loc"][-1] in {"guild_id", "client_id", "guildId"}
    records = mongo[admin_settings.mongodb_database][ServerMusicBot.Settings.name]
    assert await records.count_documents({}) == 0  # no PENDING_INVITE for guild 0


async def test_every_method_of_a_path_is_in_allow(admin_settings: Settings) -> None:
    async with running_app(admin_settings) as running:
        answer = await running.http.request("OPTIONS", "/bots")
        assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD, POST"
        answer = await running.http.put("/bots/1", headers=ADMIN)
        assert answer.status_code == 405 and answer.headers["allow"] == "DELETE, PATCH"


async def test_deleting_a_bot_removes_its_guild_records_and_players(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot(name="Leaving")
    guild = fake_discord.add_guild()
    await fake_discord.add_bot_to_guild(bot, guild.id)
    db = mongo[admin_settings.mongodb_database]
    async with running_with_ready(admin_settings, mongo, bot) as running:
        stored = await db[MusicBot.Settings.name].find_one({"client_id": bot.client_id})
        assert stored is not None
        records = db[ServerMusicBot.Settings.name]
        async with asyncio.timeout(30):
            while not await records.find_one({"music_bot_id": stored["_id"], "status": ServerStatus.ACTIVE}):
                await asyncio.sleep(0.05)
        await PlayerSnapshot(
            bot_id=bot.client_id, guild_id=guild.id, voice_channel_id=guild.voice_channel_id
        ).insert()

        deleted = await running.http.delete(f"/bots/{bot.client_id}", headers=ADMIN)
        assert deleted.status_code == 204
        assert running.manager.get_runner(bot.client_id) is None
    assert await db[MusicBot.Settings.name].count_documents({}) == 0
    assert await records.count_documents({"music_bot_id": stored["_id"]}) == 0
    assert await db[PlayerSnapshot.Settings.name].count_documents({"bot_id": bot.client_id}) == 0


async def test_last_error_is_bounded_and_sanitised(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot(name="Upstream")
    await store_bot(mongo, admin_settings, bot)
    other = fake_discord.add_bot(name="Other")
    ciphertext = "gAAAAABn" + "Q" * 90
    noisy = f"proxy says:\n\x1b[31m{other.token}\x1b[0m stored {ciphertext}\r\n" + "blah " * 400
    fake_discord.fail_next("/users/@me", status=400, body={"message": noisy, "code": 0}, times=10_000)
    async with running_app(admin_settings) as running:
        await running.wait_for(bot, BotState.RECONNECTING)
        (listed,) = (await running.http.get("/bots")).json()["bots"]
    error = listed["lastError"]
    assert error.startswith("HTTPException: 400 Bad Request") and "proxy says" in error
    assert len(error) <= 200 and error.endswith("…")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in error)
    assert other.token not in error and ciphertext not in error and "[REDACTED]" in error


async def _outage_answers(running: RunningApp, client_id: int) -> list[tuple[str, int, str | None, float]]:
    """(what, status, Retry-After, seconds) for the routes that need the database."""
    http = running.http
    results = []
    for what, request in (
        ("GET /guilds/1/bots", lambda: http.get("/guilds/1/bots")),
        ("POST /guilds/1/invite", lambda: http.post("/guilds/1/invite", headers=ADMIN)),
        ("PATCH /bots/{id}", lambda: http.patch(f"/bots/{client_id}", json={"name": "New"}, headers=ADMIN)),
        ("POST /bots/{id}/restart", lambda: http.post(f"/bots/{client_id}/restart", headers=ADMIN)),
        (
            "POST /bots",
            lambda: http.post("/bots", json={"token": make_fake_token(client_id + 1)}, headers=ADMIN),
        ),
    ):
        started = time.monotonic()
        answer = await request()
        results.append(
            (what, answer.status_code, answer.headers.get("retry-after"), time.monotonic() - started)
        )
    return results


async def test_a_database_outage_answers_503_with_retry_after(
    tmp_path: Path, fake_discord: FakeDiscord, make_settings: Any
) -> None:
    async with own_database(tmp_path / "db", fake_discord, make_settings, admin_api_token=ADMIN_TOKEN) as own:
        database = own.process
        bot = fake_discord.add_bot(name="Steady")
        async with running_with_ready(own.settings, own.observer, bot) as running:
            database.kill()
            # Before the monitor has noticed: the request's own deadline answers.
            first = await _outage_answers(running, bot.client_id)
            # Once it knows (a request told it, or its own ping): at once.
            assert not running.app.state.database_monitor.reachable
            second = await _outage_answers(running, bot.client_id)
            for what, status, retry_after, seconds in first + second:
                assert (status, retry_after) == (503, "5"), (what, status, seconds)
            print("outage answers (s):", [(w, round(s, 3)) for w, _, _, s in first + second])
            health = (await running.http.get("/health")).json()
            assert health["status"] == "degraded" and health["database"] == "unreachable"
            assert (await running.http.get("/bots")).status_code == 200
            assert running.manager.get_runner(bot.client_id) is not None
            database.start()  # the same port and data
            assert await running.app.state.database_monitor.check()
            assert (await running.http.get("/guilds/1/bots")).status_code == 200
            # Again, with registration first: its own ping notices (its deadline covers Discord too).
            database.kill()
            token = make_fake_token(bot.client_id + 1)
            started = time.monotonic()
            created = await running.http.post("/bots", json={"token": token}, headers=ADMIN)
            print(f"POST /bots first in an outage: {time.monotonic() - started:.3f} s")
            assert created.status_code == 503 and created.headers["retry-after"] == "5"


async def test_deploying_commands_tells_a_refusal_from_an_outage(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    bot = fake_discord.add_bot(name="Commands")
    async with running_with_ready(admin_settings, mongo, bot) as running:
        path = f"/bots/{bot.client_id}/commands"
        elsewhere = await running.http.post(path, json={"guildId": 424242}, headers=ADMIN)
        assert elsewhere.status_code == 409 and "403" in elsewhere.json()["detail"], elsewhere.text
        fake_discord.fail_next_with_429("/commands", retry_after=3600, method="PUT")
        limited = await running.http.post(path, headers=ADMIN)
        assert limited.status_code == 502 and "rate limited" in limited.json()["detail"], limited.text
        assert (await running.http.post(path, headers=ADMIN)).status_code == 200
