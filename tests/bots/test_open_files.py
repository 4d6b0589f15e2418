"""File descriptors: the soft limit is raised at start, and a bot that runs out fails with a reason."""

from __future__ import annotations

import errno
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.db.queries import get_music_bot_by_client_id
from app.open_files import RESERVED_FILES, files_per_bot, out_of_files
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot

_RAISE = """
import resource
from app.open_files import raise_open_file_limit
limit = raise_open_file_limit()
print(limit.raised_from, limit.soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")

    def low_soft_limit() -> None:  # in the child, before it runs: as a default systemd unit would
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    output = subprocess.run(
        [sys.executable, "-c", _RAISE], preexec_fn=low_soft_limit, capture_output=True, text=True, check=True
    ).stdout.split()
    raised_from, soft, effective = (int(part) for part in output)
    assert raised_from == 256 and soft == effective and soft > 256
    if hard != resource.RLIM_INFINITY:
        assert soft == hard


def test_emfile_is_recognised_through_aiohttp() -> None:
    cause = OSError(errno.EMFILE, "Too many open files")
    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    assert out_of_files(aiohttp.ClientConnectorError(key, cause))
    # discord.py's first-connection AttributeError hides the failure in its context.
    hidden = AttributeError("'NoneType' object has no attribute 'sequence'")
    hidden.__context__ = cause
    assert out_of_files(hidden)
    assert not out_of_files(OSError(errno.ECONNREFUSED, "refused"))
    assert files_per_bot(1) * 100 + RESERVED_FILES < 1024  # the docs' sizing: ~240 bots per 1,024


def _lowest_free_fd() -> int:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd


@contextmanager
def no_new_files() -> Iterator[None]:
    """From here on, opening a file or socket fails with EMFILE (the fds already open stay)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_bot_out_of_file_descriptors_fails_with_a_reason(
    fake_discord: FakeDiscord,
    fleet_settings: Settings,
    mongo: AsyncMongoClient[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    running_bot = fake_discord.add_bot(name="Has its sockets")
    late = fake_discord.add_bot(name="One too many")
    await store_bot(mongo, fleet_settings, running_bot)
    await store_bot(mongo, fleet_settings, late, enabled=False)
    async with running_app(fleet_settings) as running:
        await running.wait_for(running_bot, BotState.READY)
        record = await get_music_bot_by_client_id(late.client_id)
        assert record is not None
        record.enabled = True
        caplog.clear()
        with no_new_files():
            await running.manager.sync_bot(late.client_id, record)
            state = await running.wait_for(late, BotState.FAILED, BotState.READY, timeout=30)
        assert state is BotState.FAILED
        runner = running.manager.get_runner(late.client_id)
        assert runner is not None and runner.last_error is not None
        assert runner.last_error.startswith("out of file descriptors (EMFILE)")
        assert "RLIMIT_NOFILE" in runner.last_error and "LimitNOFILE" in runner.last_error
        # One error line for the bot, no traceback above DEBUG; the other bot is untouched.
        loud = [r for r in caplog.records if r.levelno > logging.DEBUG and (r.exc_info or r.exc_text)]
        assert not loud, [r.getMessage() for r in loud]
        assert fake_discord.is_connected(running_bot)
        assert running.manager.state_of(running_bot.client_id) is BotState.READY
        listed = (await running.http.get("/bots", params={"status": "failed"})).json()["bots"]
        assert [b["lastError"] for b in listed] == [runner.last_error]
