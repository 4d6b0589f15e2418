"""GET /dashboard over HTTP: off without ADMIN_API_TOKEN, the sign-in, the cookie, CSRF, sign-out,
and the page's JSON state (the browser tests drive the page itself)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest

from app.api.dashboard.session import COOKIE, DashboardSessions
from app.bots.status import BotState
from tests.music.conftest import World, WorldFactory, until

TOKEN = "dashboard-admin-token-for-tests"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def sign_in(http: httpx.AsyncClient, token: str = TOKEN, **headers: str) -> httpx.Response:
    return await http.post("/dashboard/sign-in", content=f"token={token}", headers=FORM | headers)


def session_cookie(response: httpx.Response) -> dict[str, str]:
    """The Cookie header a browser would send back (httpx keeps Secure cookies off plain http)."""
    jar = SimpleCookie(response.headers["set-cookie"])
    return {"Cookie": f"{COOKIE}={jar[COOKIE].value}"}


async def test_the_dashboard_is_off_without_an_admin_token(make_world: WorldFactory) -> None:
    world = await make_world()
    http = world.app.http
    for path in ("/dashboard", "/dashboard/state", "/dashboard/static/dashboard.js"):
        assert (await http.get(path)).status_code == 404, path
    assert (await sign_in(http, "anything")).status_code == 404
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]


async def test_sign_in_sets_a_strict_cookie_and_never_takes_the_token_from_a_url(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    world = await make_world(admin_api_token=TOKEN)
    http = world.app.http

    form = await http.get("/dashboard", params={"token": TOKEN})  # a token in a URL opens nothing
    assert form.status_code == 200
    assert 'type="password"' in form.text and '<label for="token">' in form.text
    assert 'method="post" action="/dashboard/sign-in"' in form.text
    assert TOKEN not in form.text
    assert form.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in form.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    assert (await http.get("/dashboard/state")).status_code == 401

    wrong = await sign_in(http, "not-the-token")
    assert wrong.status_code == 401 and "not the admin token" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert "not-the-token" not in caplog.text

    signed = await sign_in(http)
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
    cookie = signed.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/dashboard" in cookie.lower()
    assert TOKEN not in cookie
    # The service logged neither (the test's own client logs the URL it was told to send).
    assert not [r for r in caplog.records if not r.name.startswith("httpx") and TOKEN in r.getMessage()]

    page = await http.get("/dashboard", headers=session_cookie(signed))
    assert page.status_code == 200 and 'id="bots"' in page.text
    assert f'data-bot-id="{world.bot.client_id}"' in page.text
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page.text
    assert "https://" not in page.text.replace("https://music.example", "")  # no CDN, nothing external
    script = await http.get("/dashboard/static/dashboard.js", headers=session_cookie(signed))
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    style = await http.get("/dashboard/static/dashboard.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert (await http.get("/dashboard/static/../routes.py")).status_code == 404
    assert (await http.get("/dashboard/static/view.py")).status_code == 404


async def test_forms_from_other_sites_are_refused_and_sign_out_ends_the_session(
    make_world: WorldFactory,
) -> None:
    world = await make_world(admin_api_token=TOKEN)
    http = world.app.http
    assert (await sign_in(http, Origin="https://evil.example")).status_code == 403
    assert (await sign_in(http, **{"Sec-Fetch-Site": "cross-site"})).status_code == 403
    assert (await sign_in(http, **{"Sec-Fetch-Site": "same-origin"})).status_code == 303

    cookie = session_cookie(await sign_in(http))
    assert (await http.get("/dashboard/state", headers=cookie)).status_code == 200
    # Sign-out needs the page's own form token: a forged form (even same-site) does nothing.
    forged = await http.post("/dashboard/sign-out", content="form_token=guess", headers=FORM | cookie)
    assert forged.status_code == 403
    page = (await http.get("/dashboard", headers=cookie)).text
    form_token = page.split('name="form_token" value="')[1].split('"')[0]
    out = await http.post("/dashboard/sign-out", content=f"form_token={form_token}", headers=FORM | cookie)
    assert out.status_code == 303
    assert f'{COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert (
        await http.get("/dashboard/state", headers=cookie)
    ).status_code == 401  # revoked, not just forgotten


def test_sessions_are_signed_expire_and_end_with_a_new_admin_token(make_settings: object) -> None:
    settings = make_settings(admin_api_token=TOKEN)  # type: ignore[operator]
    sessions = DashboardSessions()
    cookie = sessions.issue(settings)
    assert sessions.verify(settings, cookie) is not None
    session_id, expires, signature = cookie.split(".")
    assert sessions.verify(settings, f"{session_id}.{int(expires) + 3600}.{signature}") is None  # tampered
    assert sessions.verify(settings, f"{session_id}.1.{signature}") is None
    rotated = make_settings(admin_api_token="a-new-admin-token")  # type: ignore[operator]
    assert sessions.verify(rotated, cookie) is None
    assert sessions.verify(make_settings(), cookie) is None  # type: ignore[operator]  # dashboard off


async def test_the_state_shows_bots_players_nodes_and_events(make_world: WorldFactory) -> None:
    world: World = await make_world(bots=2, admin_api_token=TOKEN)
    http = world.app.http
    cookie = session_cookie(await sign_in(http))

    async def state() -> dict[str, object]:
        response = await http.get("/dashboard/state", headers=cookie)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        return response.json()

    view = await state()
    assert view["summary"] == {"bots": 2, "ready": 2, "failed": 0, "players": 0, "database": "ok"}
    [worker] = view["workers"]  # type: ignore[misc]
    assert worker["current"] is True and worker["bots"] == 2
    assert {bot["clientId"] for bot in view["bots"]} == {str(b.client_id) for b in world.bots}  # type: ignore[union-attr]
    assert {bot["worker"] for bot in view["bots"]} == {worker["id"]}  # type: ignore[union-attr]
    [node] = view["nodes"]  # type: ignore[misc]
    assert node["name"] == "node0" and node["state"] == "connected" and node["botsConnected"] == 2

    user = await world.user_in_voice("Alice")
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    [playing] = (await state())["playing"]  # type: ignore[misc]
    assert playing["guild"] == world.guild.name and playing["channel"] == "Music"
    assert playing["track"] == "Song 1" and playing["listeners"] == 1 and playing["state"] == "playing"
    assert playing["bot"] == world.bot.name

    victim = world.bots[1]
    await world.discord.revoke_token(victim)
    await world.app.wait_for(victim, BotState.FAILED)
    view = await state()
    assert view["bots"][0]["clientId"] == str(victim.client_id)  # type: ignore[index]  # problems first
    assert view["bots"][0]["state"] == "failed" and "revoked" in view["bots"][0]["lastError"]  # type: ignore[index]
    kinds = [event["kind"] for event in view["events"]]  # type: ignore[union-attr]
    assert "bot_failed" in kinds and "node_up" in kinds

    new_guild = world.discord.add_guild(name="Second Server")
    await world.discord.add_bot_to_guild(world.bot, new_guild.id)
    await until(lambda: any("Second Server" in e.text for e in world.app.manager.events.recent()))
    await world.lavalink.shutdown_node()
    await until(lambda: any(e.kind.value == "node_down" for e in world.app.manager.events.recent()))
    view = await state()
    assert view["events"][0]["kind"] == "node_down"  # type: ignore[index]  # newest first
    assert any(e["kind"] == "guild_joined" and "Second Server" in e["text"] for e in view["events"])  # type: ignore[union-attr]
