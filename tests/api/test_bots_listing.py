"""`GET /bots` filtered by state and paged by client id, with the unpaged form unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot


async def test_bots_filter_and_pages(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    ready = [fake_discord.add_bot(name=f"Paged {n}") for n in range(5)]
    disabled = fake_discord.add_bot(name="Paged off")
    for bot in ready:
        await store_bot(mongo, fleet_settings, bot)
    await store_bot(mongo, fleet_settings, disabled, enabled=False)
    every = sorted(str(bot.client_id) for bot in [*ready, disabled])

    async with running_app(fleet_settings) as running:
        for bot in ready:
            await running.wait_for(bot, BotState.READY)
        http = running.http

        unpaged = await http.get("/bots")
        assert set(unpaged.json()) == {"bots"} and "link" not in unpaged.headers  # as before
        assert sorted(b["clientId"] for b in unpaged.json()["bots"]) == every

        only_disabled = (await http.get("/bots", params={"status": "disabled"})).json()
        assert [b["clientId"] for b in only_disabled["bots"]] == [str(disabled.client_id)]
        assert set(only_disabled) == {"bots"}

        # Pages of 2 in client-id order; each names the next cursor, the last says null.
        seen: list[str] = []
        params: dict[str, str | int] = {"limit": 2}
        pages = 0
        while True:
            response = await http.get("/bots", params=params)
            assert response.status_code == 200
            body = response.json()
            pages += 1
            assert len(body["bots"]) <= 2
            seen += [b["clientId"] for b in body["bots"]]
            if body["next"] is None:
                assert "link" not in response.headers
                break
            assert body["next"] == body["bots"][-1]["clientId"]
            assert response.headers["link"] == f'</bots?limit=2&after={body["next"]}>; rel="next"'
            params = {"limit": 2, "after": body["next"]}
        assert seen == every and pages == 3

        ready_page = await http.get("/bots", params={"status": "ready", "limit": 3})
        body = ready_page.json()
        assert [b["status"] for b in body["bots"]] == ["ready"] * 3
        assert body["next"] == body["bots"][-1]["clientId"]
        assert ready_page.headers["link"].startswith("</bots?status=ready&limit=3&after=")
        rest = (await http.get("/bots", params={"status": "ready", "after": body["next"]})).json()
        assert len(rest["bots"]) == 2 and rest["next"] is None  # `after` alone: all the rest
        beyond = (await http.get("/bots", params={"after": every[-1]})).json()
        assert beyond == {"bots": [], "next": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "abc"}, "after"),
        ({"status": "sleeping"}, "status"),
    ],
)
async def test_bad_bots_parameters_are_refused_with_a_reason(
    fleet_settings: Settings, params: dict[str, str | int], field: str
) -> None:
    async with running_app(fleet_settings) as running:
        response = await running.http.get("/bots", params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", field] and error["msg"]
