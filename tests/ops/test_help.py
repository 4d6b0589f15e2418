"""Every operator command explains itself with an example; the docs name only real commands."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
import typer
from typer.testing import CliRunner

from app.cli import cli
from tests.ops.conftest import ROOT, clean_env

COMMANDS = [
    ["serve"],
    ["gen-key"],
    ["invite"],
    ["seed"],
    ["deploy-commands"],
    ["clear-commands"],
    ["rotate-key"],
    ["db"],
    ["bots"],
    ["bots", "list"],
    ["bots", "add"],
    ["bots", "enable"],
    ["bots", "disable"],
    ["bots", "remove"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert f"$ chorus {' '.join(command)}" in result.output


def _registered() -> set[str]:
    group = typer.main.get_command(cli)
    names: set[str] = set()
    for name, command in getattr(group, "commands", {}).items():
        names.add(name)
        for sub in getattr(command, "commands", {}):
            names.add(f"{name} {sub}")
    return names


def test_the_docs_only_mention_commands_that_exist() -> None:
    registered = _registered()
    for doc in (
        "README.md",
        "docs/SETUP_MULTI_BOTS.md",
        "docs/OPERATIONS.md",
        "scripts/README.md",
        "seeds/README.md",
    ):
        text = (ROOT / doc).read_text()
        for match in re.finditer(r"(?<![\w/.-])chorus ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", text):
            first, second = match.groups()
            name = f"{first} {second}" if first == "bots" and second else first
            if first != "chorus":  # "docker compose exec chorus chorus seed": the service, then the command
                assert name in registered, f"{doc} mentions `chorus {name}`, which does not exist"


async def test_the_scripts_are_thin_entries_to_the_same_commands() -> None:
    async def script_help(name: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "scripts" / name),
            "--help",
            env=clean_env(COLUMNS="200"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    names = ("seed.py", "deploy_commands.py", "clear_commands.py")
    results = await asyncio.gather(*(script_help(name) for name in names))
    for (code, output), command in zip(results, ("seed", "deploy-commands", "clear-commands"), strict=True):
        assert code == 0, output
        assert f"Usage: chorus {command}" in output
        assert f"$ chorus {command}" in output
