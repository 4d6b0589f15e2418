"""Bad settings and startup failures: one readable line each, exit 2, never a traceback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli import cli
from app.config_errors import describe_settings_errors
from app.settings import Settings
from app.tokens import generate_key
from tests.ops.conftest import CHORUS, clean_env

EVERY_COMMAND = [
    ["serve"],
    ["seed", "bots.json"],
    ["deploy-commands"],
    ["clear-commands"],
    ["rotate-key"],
    ["db"],
    ["invite", "123"],
    ["bots", "list"],
    ["bots", "add", "Music 1"],
    ["bots", "enable", "123"],
    ["bots", "disable", "123"],
    ["bots", "remove", "--yes", "123"],
]


async def _run(*args: str, cwd: Path, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CHORUS, *args,
        env=clean_env(**env), cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_command_reports_each_bad_setting_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LOG_LEVEL=verbose\n")  # from .env as well as the environment
    for command in EVERY_COMMAND:
        result = CliRunner().invoke(
            cli, command, env={"HTTP_PORT": "30o0", "DATA_DIR": str(tmp_path / "data")}
        )
        assert result.exit_code == 2, (command, result.output)
        assert result.stderr.splitlines() == [
            "chorus: HTTP_PORT: not a valid port (a whole number from 0 to 65535) ('30o0')",
            "chorus: LOG_LEVEL: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' ('verbose')",
        ], command
        assert result.stdout == ""
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "data").exists()  # nothing was started


async def test_a_bad_setting_is_one_line_from_the_real_console_script(tmp_path: Path) -> None:
    code, out, err = await _run("serve", cwd=tmp_path, HTTP_PORT="30o0", LOG_LEVEL="verbose")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "chorus: HTTP_PORT: not a valid port (a whole number from 0 to 65535) ('30o0')",
        "chorus: LOG_LEVEL: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' ('verbose')",
    ]


async def test_gen_key_reads_no_settings_so_it_works_while_they_are_broken(tmp_path: Path) -> None:
    code, out, err = await _run("gen-key", cwd=tmp_path, HTTP_PORT="30o0", LOG_LEVEL="verbose")
    assert (code, err) == (0, "")
    assert len(out.strip()) == 44  # a Fernet key


def test_secret_settings_are_named_but_their_value_is_never_shown() -> None:
    password = "hunter2-very-secret"
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None,  # type: ignore[call-arg]  # pydantic-settings init kwarg
            mongodb_url=f"mongodb://chorus:{password}@db.example/not.valid",
            http_port=70000,
            identify_budget_share=2,
        )
    lines = describe_settings_errors(caught.value)
    assert lines == [
        "HTTP_PORT: not a valid port (a whole number from 0 to 65535) (70000)",
        "IDENTIFY_BUDGET_SHARE: must be at most 1 (2)",
    ]
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, mongodb_url=f"mongodb://chorus:{password}@db.example/not.valid")  # type: ignore[call-arg]
    (line,) = describe_settings_errors(caught.value)
    assert (
        line == "MONGODB_URL: its database 'not.valid' is not a valid MongoDB database name (it contains '.')"
    )
    assert password not in line


async def test_serve_with_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    dead = _free_port()
    env = {
        "MONGODB_URL": f"mongodb://chorus:s3cret-pw@127.0.0.1:{dead}/music",
        "TOKEN_ENCRYPTION_KEYS": generate_key(),
        "DATABASE_STARTUP_TIMEOUT": "1",
        "HTTP_PORT": str(_free_port()),
    }
    (code, _, err), (_, _, debug) = await asyncio.gather(
        _run("serve", cwd=tmp_path, **env, LOG_LEVEL="INFO"),
        _run("serve", cwd=tmp_path, **env, LOG_LEVEL="DEBUG"),
    )
    assert code == 2, err
    chorus_lines = [line for line in err.splitlines() if line.startswith("chorus:")]
    assert len(chorus_lines) == 1
    assert chorus_lines[0].startswith(
        f"chorus: cannot reach MongoDB at 127.0.0.1:{dead} (database 'music'): "
    )
    assert "DATABASE_STARTUP_TIMEOUT" in chorus_lines[0]
    assert "Traceback" not in err and "Application startup failed" not in err
    assert "Topology Description" not in err  # pymongo's dump is for DEBUG
    assert "Topology Description" in debug
    assert "s3cret-pw" not in err + debug


async def test_serve_refuses_a_taken_port_and_bad_settings_it_needs_in_one_line_each(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await _run("serve", cwd=tmp_path, HTTP_PORT=str(port), DATA_DIR=str(tmp_path / "d"))
    assert code == 2, err
    assert f"chorus: HTTP_PORT: cannot listen on 127.0.0.1:{port}:" in err
    assert "Traceback" not in err

    code, _, err = await _run(
        "serve",
        cwd=tmp_path,
        HTTP_PORT=str(_free_port()),
        DATA_DIR=str(tmp_path / "d"),
        LAVALINK_NODES="main=lavalink:2333=pw-not-shown",
        DISCORD_TOKEN="not-a-token",
    )
    assert code == 2, err
    assert err.splitlines() == [
        "chorus: LAVALINK_NODES entry 'main': the URI must start with http:// or https://",
        "chorus: DISCORD_TOKEN: not a Discord bot token "
        "(expected three dot-separated base64url parts, e.g. AAAA.BBBBBB.CCCC...)",
    ]


# -- the database named in MONGODB_URL --------------------------------------------------------


def _database(**values: str) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mongodb://db.example:27017/mydb", "mydb"),
        ("mongodb://user:p%40ss@h1:1,h2:2/fleet?replicaSet=rs0", "fleet"),
        ("mongodb+srv://user:pw@cluster.example.net/prod?retryWrites=true", "prod"),
        ("mongodb://db.example:27017/?replicaSet=rs0", "chorus"),
        ("mongodb://db.example:27017", "chorus"),
    ],
)
def test_the_database_named_in_the_url_is_used(url: str, expected: str) -> None:
    settings = _database(mongodb_url=url)
    assert settings.mongodb_database == expected
    assert not settings.database_overrides_url


def test_an_explicit_database_wins_and_says_so() -> None:
    settings = _database(mongodb_url="mongodb://db/mydb", mongodb_database="other")
    assert settings.mongodb_database == "other"
    assert settings.database_overrides_url
    assert settings.database_choice == (
        "database 'other' (MONGODB_DATABASE; it overrides 'mydb' named in MONGODB_URL)"
    )
    assert _database(mongodb_url="mongodb://db/same", mongodb_database="same").database_overrides_url is False
    assert _database().mongodb_database == "chorus"
