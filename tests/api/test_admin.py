"""The admin API end to end: auth, bot management against the fake Discord, no token ever echoed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.commands import command_payloads
from app.bots.status import BotState
from app.db.models import MusicBot
from app.settings import Settings
from tests.api.admin_api import ADMIN, running_with_ready, settings_with_admin_api
from tests.fakes.discord import FakeDiscord
from tests.fleet import RunningApp, running_app, store_bot

Mongo = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
def admin_settings(make_settings: Any, fake_discord: FakeDiscord) -> Settings:
    return settings_with_admin_api(make_settings, fake_discord)


async def runner_state(running: RunningApp, client_id: int, *states: BotState) -> None:
    async with asyncio.timeout(30):
        while (runner := running.manager.get_runner(client_id)) is None:
            await asyncio.sleep(0.01)
    await runner.wait_for_state(*states, timeout=30)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/bots"),
        ("PATCH", "/bots/1"),
        ("DELETE", "/bots/1"),
        ("POST", "/bots/1/restart"),
        ("POST", "/bots/1/commands"),
        ("POST", "/guilds/1/invite"),
    ],
)
async def test_every_admin_endpoint_is_guarded(
    method: str, path: str, admin_settings: Settings, fleet_settings: Settings
) -> None:
    async with running_app(admin_settings) as running:
        missing = await running.http.request(method, path, json={})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = await running.http.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        basic = await running.http.request(method, path, json={}, headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
    async with running_app(fleet_settings) as running:  # no ADMIN_API_TOKEN: the admin API is off
        disabled = await running.http.request(method, path, json={}, headers=ADMIN)
        assert disabled.status_code == 404 and "ADMIN_API_TOKEN" in disabled.text


async def test_add_change_restart_deploy_and_delete_a_bot(
    fake_discord: FakeDiscord, admin_settings: Settings, mongo: Mongo
) -> None:
    steady = fake_discord.add_bot(name="Steady")
    newcomer = fake_discord.add_bot(name="Newcomer")
    bots = mongo[admin_settings.mongodb_database][MusicBot.Settings.name]
    async with running_with_ready(admin_settings, mongo, steady) as running:
        http = running.http
        responses: list[str] = []

        created = await http.post("/bots", json={"token": newcomer.token}, headers=ADMIN)
        responses.append(created.text)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["clientId"] == str(newcomer.client_id) and body["name"] == "Newcomer"
        assert set(body) == {
            "name", "clientId", "guilds", "users", "status", "latencyMs", "lastError", "shards", "worker"
        }  # fmt: skip
        assert body["worker"] == running.manager.fleet.me  # a fleet of one: this worker runs it
        await runner_state(running, newcomer.client_id, BotState.READY)
        stored = await bots.find_one({"client_id": newcomer.client_id})
        assert stored is not None and newcomer.token not in str(stored)

        duplicate = await http.post("/bots", json={"token": newcomer.token, "name": "Again"}, headers=ADMIN)
        responses.append(duplicate.text)
        assert duplicate.status_code == 409 and "already registered" in duplicate.json()["detail"]

        revoked = fake_discord.add_bot(name="Revoked")
        await fake_discord.revoke_token(revoked)
        rejected = await http.post("/bots", json={"token": revoked.token}, headers=ADMIN)
        responses.append(rejected.text)
        assert rejected.status_code == 422
        assert rejected.json()["detail"][0]["loc"] == ["body", "token"]
        assert "401 Unauthorized" in rejected.json()["detail"][0]["msg"]
        malformed = await http.post("/bots", json={"token": "not a token"}, headers=ADMIN)
        assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["body", "token"]
        bad_body = await http.post("/bots", json={"token": revoked.token, "colour": "red"}, headers=ADMIN)
        responses.append(bad_body.text)
        assert bad_body.status_code == 422 and bad_body.json()["detail"][0]["loc"] == ["body", "colour"]
        missing_token = await http.post("/bots", json={"name": "x"}, headers=ADMIN)
        assert missing_token.status_code == 422 and missing_token.json()["detail"][0]["loc"] == [
            "body",
            "token",
        ]

        renamed = await http.patch(f"/bots/{newcomer.client_id}", json={"name": "Renamed"}, headers=ADMIN)
        assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
        await runner_state(running, newcomer.client_id, BotState.READY)
        empty = await http.patch(f"/bots/{newcomer.client_id}", json={}, headers=ADMIN)
        assert empty.status_code == 422 and "nothing to change" in empty.json()["detail"][0]["msg"]
        unknown = await http.patch("/bots/42", json={"enabled": False}, headers=ADMIN)
        assert unknown.status_code == 404

        disabled = await http.patch(f"/bots/{newcomer.client_id}", json={"enabled": False}, headers=ADMIN)
        assert disabled.json()["status"] == "disabled"  # as /bots lists it
        assert running.manager.get_runner(newcomer.client_id) is None
        assert (await http.post(f"/bots/{newcomer.client_id}/restart", headers=ADMIN)).status_code == 409
        await http.patch(f"/bots/{newcomer.client_id}", json={"enabled": True}, headers=ADMIN)
        await runner_state(running, newcomer.client_id, BotState.READY)
        before = newcomer.identify_count
        restarted = await http.post(f"/bots/{newcomer.client_id}/restart", headers=ADMIN)
        assert restarted.status_code == 200
        await fake_discord.wait_for_identify(newcomer, count=before + 1)

        guild = fake_discord.add_guild()
        await fake_discord.add_bot_to_guild(newcomer, guild.id)
        deployed = await http.post(
            f"/bots/{newcomer.client_id}/commands", json={"guildId": guild.id}, headers=ADMIN
        )
        assert deployed.status_code == 200, deployed.text
        payload = await command_payloads()
        assert deployed.json() == {"clientId": str(newcomer.client_id), "scope": f"guild {guild.id}",
                                   "commands": len(payload)}  # fmt: skip
        assert {c["name"] for c in fake_discord.get_commands(newcomer.client_id, guild.id)} == {
            c["name"] for c in payload
        }
        assert fake_discord.get_commands(steady.client_id, guild.id) == []

        deleted = await http.delete(f"/bots/{newcomer.client_id}", headers=ADMIN)
        assert deleted.status_code == 204
        assert running.manager.get_runner(newcomer.client_id) is None
        assert await bots.find_one({"client_id": newcomer.client_id}) is None
        assert (await http.delete(f"/bots/{newcomer.client_id}", headers=ADMIN)).status_code == 404

        # Nothing else was touched, and no response carried a token.
        assert steady.identify_count == 1 and fake_discord.is_connected(steady)
        for text in responses:
            for bot in (newcomer, revoked, steady):
                assert bot.token not in text


async def test_a_revoked_clone_tells_its_owner(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: Mongo
) -> None:
    owner = fake_discord.add_user(name="Owner")
    guild = fake_discord.add_guild()
    messenger = fake_discord.add_bot(name="Messenger")
    clone = fake_discord.add_bot(name="Clone")
    for bot in (messenger, clone):
        await fake_discord.add_bot_to_guild(bot, guild.id)
        await store_bot(mongo, fleet_settings, bot)
    fake_discord.add_member(guild.id, owner)
    bots = mongo[fleet_settings.mongodb_database][MusicBot.Settings.name]
    await bots.update_one({"client_id": clone.client_id}, {"$set": {"owner_id": owner.id}})
    async with running_app(fleet_settings) as running:
        for bot in (messenger, clone):
            await running.wait_for(bot, BotState.READY)
        await fake_discord.revoke_token(clone)
        await running.wait_for(clone, BotState.FAILED)
        dm = await fake_discord.wait_for_dm(owner)
        assert "Clone" in dm.text and "stopped" in dm.text and "4004" in dm.text
        listed = {b["clientId"]: b for b in (await running.http.get("/bots")).json()["bots"]}
        assert listed[str(clone.client_id)]["status"] == "failed"
        assert listed[str(messenger.client_id)]["status"] == "ready"
