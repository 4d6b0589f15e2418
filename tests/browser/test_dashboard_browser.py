"""The dashboard in a real browser: sign in, see the bots, watch a revoked bot turn failed and a
/play appear under "Playing now" without reloading; readable on a phone; accessible basics.

`CHORUS_UPDATE_SCREENSHOTS=1` writes the screenshots into docs/ (what the README shows); without
it they go to the test's temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.bots.status import BotState
from tests.browser.conftest import Browser, serve
from tests.music.conftest import WorldFactory

TOKEN = "browser-admin-token"
DOCS = Path(__file__).resolve().parents[2] / "docs"
BOT_STATE = (
    'const c = document.querySelector(`#bots tr[data-bot-id="${arguments[0]}"] .state`); '
    "return c && c.textContent;"
)
BOT_STATE_IS = BOT_STATE.replace("return c && c.textContent;", "return c && c.textContent === arguments[1];")


def screenshot_path(tmp_path: Path, name: str) -> Path:
    return (DOCS if os.environ.get("CHORUS_UPDATE_SCREENSHOTS") == "1" else tmp_path) / name


async def sign_in(browser: Browser, base: str, token: str = TOKEN) -> None:
    await browser.get(f"{base}/dashboard")
    await browser.until("return document.querySelector('form[action=\"/dashboard/sign-in\"]')")
    await browser.js(
        "document.getElementById('token').value = arguments[0]; document.querySelector('form').submit();",
        token,
    )


async def test_sign_in_then_the_fleet_updates_live(
    make_world: WorldFactory, browser: Browser, tmp_path: Path
) -> None:
    world = await make_world(bots=3, admin_api_token=TOKEN, guild_name="Lo-fi Lounge")
    async with serve(world.app.app) as base:
        await sign_in(browser, base)
        await browser.until("return document.querySelector('#bots')", what="the dashboard")
        assert TOKEN not in await browser.call(lambda: browser.driver.current_url)
        assert await browser.js("return document.querySelectorAll('#bots tbody tr[data-bot-id]').length") == 3
        for bot in world.bots:
            assert await browser.js(BOT_STATE, str(bot.client_id)) == "ready"

        cookies = await browser.call(browser.driver.get_cookies)
        [session] = [c for c in cookies if c["name"] == "chorus_dashboard"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
        assert TOKEN not in session["value"]
        assert await browser.js("return document.cookie") == ""  # HttpOnly: no script can read it

        # Mark this page load: a reload would lose the mark.
        await browser.js("window.chorusPageMark = 'same page';")
        victim = world.bots[2]
        await world.discord.revoke_token(victim)
        await world.app.wait_for(victim, BotState.FAILED)
        await browser.until(BOT_STATE_IS, str(victim.client_id), "failed", what="the bot failed")
        last_error = await browser.text(f'#bots tr[data-bot-id="{victim.client_id}"] .error-text')
        assert last_error is not None and "revoked" in last_error

        user = await world.user_in_voice("Alice")
        await world.run(user, "play", query="Song 1")
        await world.playing("Song 1")
        row = await browser.until(
            "const r = document.querySelector(`#playing tr[data-bot-id='${arguments[0]}']`); "
            "return r && r.textContent;",
            str(world.bot.client_id),
            what="the player",
        )
        assert "Song 1" in row and "Lo-fi Lounge" in row and "Music" in row and "playing" in row
        await browser.until("return document.querySelector('#events tr[data-kind=\"bot_failed\"]')")
        assert await browser.js("return window.chorusPageMark") == "same page"
        assert "1 failed" in " ".join((await browser.text("#summary") or "").split())

        await browser.resize(1280, 1250)  # the whole page, for the README
        await browser.screenshot(screenshot_path(tmp_path, "dashboard.png"))

        # A phone: nothing wider than the screen but the tables' own scroll areas.
        await browser.resize(390, 844)
        await browser.get(f"{base}/dashboard")
        await browser.until("return document.querySelector('#bots')")
        # Rows read as cards there: each cell shows its column's name.
        label = await browser.js(
            "return getComputedStyle(document.querySelector('#bots tbody td'), '::before').content"
        )
        assert label == '"State"'
        assert (
            await browser.js("return document.querySelector('#bots tbody td').getAttribute('role')") == "cell"
        )
        overflow = await browser.js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
        await browser.screenshot(screenshot_path(tmp_path, "dashboard-phone.png"))

        # Signing out ends the session for the page too: its next poll says so.
        await browser.resize(1280, 900)
        await browser.js("document.querySelector('form.sign-out').submit();")
        await browser.until("return document.getElementById('token')", what="the sign-in form")
        assert await browser.call(browser.driver.get_cookies) == []


async def test_a_wrong_token_is_refused_with_an_accessible_form(
    make_world: WorldFactory, browser: Browser
) -> None:
    world = await make_world(admin_api_token=TOKEN)
    async with serve(world.app.app) as base:
        await sign_in(browser, base, "wrong token")
        alert = await browser.until(
            "const a = document.querySelector('[role=alert]'); return a && a.textContent;", what="the error"
        )
        assert "not the admin token" in alert
        assert (
            await browser.js("return document.getElementById('token').getAttribute('aria-invalid')") == "true"
        )
        assert (
            await browser.js("return document.querySelector('label[for=token]').textContent") == "Admin token"
        )
        assert await browser.call(browser.driver.get_cookies) == []

        await sign_in(browser, base)
        await browser.until("return document.querySelector('#bots')")
        problems = await browser.js(
            """
            const problems = [];
            if (document.documentElement.lang !== 'en') problems.push('no lang');
            for (const table of document.querySelectorAll('table')) {
              if (!table.querySelector('caption')) problems.push(`${table.id}: no caption`);
              for (const th of table.querySelectorAll('thead th'))
                if (th.getAttribute('scope') !== 'col') problems.push(`${table.id}: th without scope`);
            }
            for (const input of document.querySelectorAll('input:not([type=hidden])'))
              if (!document.querySelector(`label[for="${input.id}"]`))
                problems.push(`input ${input.name} unlabelled`);
            if (!document.querySelector('[role=status][aria-live=polite]')) problems.push('no live status');
            if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');
            return problems;
            """
        )
        assert problems == []
        # Everything the page loads comes from Chorus itself.
        sources = await browser.js(
            "return performance.getEntriesByType('resource').map(e => e.name).concat(location.href);"
        )
        assert sources and all(source.startswith(base) for source in sources), sources
