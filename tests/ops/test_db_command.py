"""`chorus db`: the embedded database in the foreground, shared with other commands, stopped cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from app.embedded import STATE_FILE
from tests.ops.conftest import CHORUS, clean_env


async def _run(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CHORUS, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_db_runs_in_the_foreground_serves_other_commands_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = clean_env(DATA_DIR=str(tmp_path / "data"))
    server = await asyncio.create_subprocess_exec(
        CHORUS, "db", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        async with asyncio.timeout(60):
            first = (await server.stdout.readline()).decode()
        assert "Embedded database (SecantusDB) running on mongodb://127.0.0.1:" in first, first
        state = json.loads((tmp_path / "data" / STATE_FILE).read_text())

        # Other commands find it through DATA_DIR and use it; a second `chorus db` refuses.
        listed, second = await asyncio.gather(
            _run("bots", "list", "--json", env=env, cwd=tmp_path), _run("db", env=env, cwd=tmp_path)
        )
        assert listed[0] == 0 and json.loads(listed[1]) == [], listed
        assert "Starting the embedded database" not in listed[2]
        assert second[0] == 1 and "already running" in second[2], second
        assert server.returncode is None
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await server.communicate()
    assert server.returncode == 0, err.decode()
    assert "Embedded database stopped." in out.decode()
    assert not (tmp_path / "data" / STATE_FILE).exists()
    try:
        os.kill(state["pid"], 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the embedded database outlived `chorus db`")


async def test_db_refuses_when_an_external_database_is_configured(tmp_path: Path) -> None:
    code, _, err = await _run("db", env=clean_env(MONGODB_URL="mongodb://127.0.0.1:9/"), cwd=tmp_path)
    assert code == 2
    assert "MONGODB_URL is set" in err
