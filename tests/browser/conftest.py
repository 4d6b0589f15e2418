"""A real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by Selenium) against the
real app served by uvicorn on a loopback port, with the music world of tests/music.

Nothing is downloaded: Selenium is given the system browser and driver, so Selenium Manager never
runs. Without them every test here is skipped with the reason and the install command (pytest
prints it: `-rs`); `.ci/run` installs them. Selenium blocks, the app runs on this test's event
loop: every browser call runs in a thread (`Browser`), so the service keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI

from tests.music.conftest import make_world  # noqa: F401  # the fixture

T = TypeVar("T")

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
MISSING = (
    "no headless browser: install Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run does) to run the dashboard's browser tests"
)


def _first(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Browser:
    """A Chrome WebDriver session whose every call runs in a worker thread."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)

    async def get(self, url: str) -> None:
        await self.call(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def until(self, script: str, *args: Any, timeout: float = 30.0, what: str = "the page") -> Any:
        """Poll a script until it returns something truthy (generous deadline: busy machines)."""
        async with asyncio.timeout(timeout):
            while not (result := await self.js(script, *args)):
                await asyncio.sleep(0.1)
        return result

    async def text(self, selector: str) -> str:
        script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;"
        return await self.js(script, selector)

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert await self.call(self.driver.save_screenshot, str(path))

    async def resize(self, width: int, height: int) -> None:
        await self.call(self.driver.set_window_size, width, height)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium, chromedriver = _first(CHROMIUM_NAMES), _first(DRIVER_NAMES)
    if chromium is None or chromedriver is None:
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="chorus-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900"):
            options.add_argument(flag)
        service = Service(executable_path=chromedriver)
        driver = await asyncio.to_thread(lambda: webdriver.Chrome(service=service, options=options))
        try:
            yield Browser(driver)
        finally:
            await asyncio.to_thread(driver.quit)


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app whose lifespan already runs (tests.fleet.running_app) on a loopback port."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
