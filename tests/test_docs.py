"""Docs follow the code: every setting is in `.env.example` with a comment, every command shown
in a fenced `sh` block runs (or is listed as skipped with the reason), versions match."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from tests.fakes.discord import make_fake_token
from tests.ops.conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]


def _env_names() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.add(str(choices[0]) if choices else name.upper())
    return names


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name in _env_names():
        index = next((i for i, line in enumerate(lines) if line.startswith(f"{name}=")), None)
        assert index is not None, f"{name} is missing from .env.example"
        preceding = lines[index - 1].strip()
        assert preceding.startswith("#") or lines[index - 2].strip().startswith("#"), f"{name} has no comment"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in _env_names():
        assert f"`{name}`" in readme, f"{name} is not in the README's configuration table"


# -- the commands the docs show, run where they can run offline --------------------------------

DOCS = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        ROOT / "seeds" / "README.md",
        ROOT / "scripts" / "README.md",
    ]
)
_FENCE = re.compile(r"^([ \t]*)```sh[ \t]*\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")

# Why a command cannot run here, checked in order; anything else runs (and must exit 0).
_SKIP_RULES: list[tuple[str, str]] = [
    (r"<[A-Za-z_ -]+>|'<[^']+>'", "has placeholders to fill in"),
    (r"^make\b", "builds the whole environment (make test is what runs this test)"),
    (r"\bcurl\b", "needs a running service"),
    (r"\bdocker\b", "needs a Docker engine (there is none on these machines)"),
    (r"\bkubectl\b", "needs a Kubernetes cluster"),
    (r"^git\b", "needs the network"),
    (r"\bmongo(dump|restore|sh)\b", "needs a MongoDB server and its tools"),
    (r"\bpip install\b|-m venv\b|^\. \.venv/bin/activate", "installs packages or changes the shell"),
    (r"\bchorus serve\b|\bchorus db\b", "runs until stopped"),
    (r"--check-online|\bchorus (deploy|clear)-commands\b|\bchorus bots add\b", "talks to Discord"),
    (r"\bbenchmarks\b|secantusd-py", "a benchmark step (make bench runs it)"),
]


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    text: str

    @property
    def skip_reason(self) -> str | None:
        return next((why for rule, why in _SKIP_RULES if re.search(rule, self.text, re.MULTILINE)), None)


def _commands(block: str) -> list[str]:
    lines = block.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    commands: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if prompted:
            if not line.startswith("$ "):
                continue  # the command's output
            line = line[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if heredoc := _HEREDOC.search(line):
            body = []
            while index < len(lines) and lines[index].strip() != heredoc[1]:
                body.append(lines[index])
                index += 1
            line = "\n".join([line, *body, heredoc[1]])
            index += 1
        commands.append(line)
    return commands


def doc_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for doc in DOCS:
        text = doc.read_text()
        for fence in _FENCE.finditer(text):
            indent = len(fence[1])
            block = "\n".join(line[indent:] for line in fence[2].splitlines())
            line_number = text.count("\n", 0, fence.start()) + 1
            for command in _commands(block):
                found.append(DocCommand(f"{doc.relative_to(ROOT)}:{line_number}", command))
    return found


_DOC_COMMANDS = doc_commands()


def test_the_docs_show_commands_and_some_of_them_run_here() -> None:
    runnable = [c for c in _DOC_COMMANDS if c.skip_reason is None]
    assert len(_DOC_COMMANDS) > 30 and len(runnable) >= 8, [c.text for c in runnable]


@pytest.mark.parametrize("command", _DOC_COMMANDS, ids=lambda c: f"{c.where} {c.text.splitlines()[0][:60]}")
def test_a_documented_command_runs(command: DocCommand, tmp_path: Path) -> None:
    if (reason := command.skip_reason) is not None:
        pytest.skip(f"cannot run offline here: {reason}")
    # A scratch copy of what the commands touch: the seed templates, a .env, a seed with fake tokens.
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    (tmp_path / ".env").write_text("")
    fake_ids = (1_111_111_111_111_111_111, 1_222_222_222_222_222_222)
    (tmp_path / "seeds" / "bots.json").write_text(
        json.dumps({"bots": [{"name": f"Music {i}", "token": make_fake_token(i)} for i in fake_ids]})
    )
    env = clean_env(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="WARNING",
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command.text],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{command.where}: `{command.text}` exited {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_the_lavalink_doc_matches_its_configuration() -> None:
    config = yaml.safe_load((ROOT / "lavalink" / "application.yml").read_text())
    doc = (ROOT / "docs" / "LAVALINK.md").read_text()
    (plugin,) = [
        p["dependency"] for p in config["lavalink"]["plugins"] if "youtube-plugin" in p["dependency"]
    ]
    version = plugin.rsplit(":", 1)[1]
    assert f"version {version} in" in doc
    mentioned = set(re.findall(r"youtube-plugin:(\d+\.\d+\.\d+)", doc))
    assert mentioned <= {version}, (
        f"docs/LAVALINK.md mentions youtube-plugin {mentioned}, the file has {version}"
    )
    http = config["lavalink"]["server"]["sources"]["http"]
    assert f"`http: {str(http).lower()}`" in doc
