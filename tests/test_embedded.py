from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.embedded import LOCK_FILE, STATE_FILE, EmbeddedDatabase
from app.key_file import KEY_FILE, load_or_create_keys
from app.process import boot_id, start_ticks


@pytest.fixture
def first(tmp_path: Path) -> Iterator[EmbeddedDatabase]:
    database = EmbeddedDatabase(tmp_path / "data")
    database.start()
    yield database
    database.stop()


def test_a_second_command_reuses_the_running_store(first: EmbeddedDatabase, tmp_path: Path) -> None:
    assert first.owned
    second = EmbeddedDatabase(tmp_path / "data")
    assert second.start() == first.url
    assert not second.owned
    second.stop()  # not the owner: must leave it running
    third = EmbeddedDatabase(tmp_path / "data")
    assert third.start() == first.url


def test_an_orphaned_store_is_adopted(first: EmbeddedDatabase, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = json.loads((data_dir / STATE_FILE).read_text())
    state.update(owner_pid=2**22 + 12345, owner_started=1)  # an owner that has exited
    (data_dir / STATE_FILE).write_text(json.dumps(state))
    heir = EmbeddedDatabase(data_dir)
    assert heir.start() == first.url
    assert heir.owned
    heir.stop()
    assert first._process is not None
    assert first._process.wait(timeout=60) is not None  # stopped by its heir (reaped here, its parent)
    first.owned = False


def test_a_stale_state_file_starts_a_new_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / STATE_FILE).write_text(json.dumps({"pid": 2**22 + 4321, "port": 9, "owner_pid": 1}))
    database = EmbeddedDatabase(data_dir)
    try:
        database.start()
        assert database.owned
        assert json.loads((data_dir / STATE_FILE).read_text())["port"] != 9
    finally:
        database.stop()


def _write_state(data_dir: Path, **fields: object) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STATE_FILE).write_text(json.dumps(fields))


@pytest.mark.parametrize("claims", ["old format", "right start time", "after a reboot"])
def test_a_stale_state_file_never_adopts_or_signals_another_process(
    claims: str, bystander: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    process, port = bystander
    data_dir = tmp_path / "data"
    state: dict[str, object] = {"pid": process.pid, "port": port, "owner_pid": 2**22 + 7}
    if claims != "old format":  # even a file that names the right start time is not enough
        state.update(instance_id="f" * 32, started=start_ticks(process.pid), owner_started=1, boot=boot_id())
    if claims == "after a reboot":
        state["boot"] = "another-boot"
    _write_state(data_dir, **state)
    database = EmbeddedDatabase(data_dir)
    try:
        url = database.start()
        assert database.owned and f":{port}/" not in url  # a server of its own, not the bystander
    finally:
        database.stop()
    assert process.poll() is None, "the unrelated process was signalled"


def test_another_secantusdb_is_not_ours(tmp_path: Path) -> None:
    """A SecantusDB we did not start (another storage, no marker of ours) is neither used nor stopped,
    even with its true pid and start time in the file."""
    other = EmbeddedDatabase(tmp_path / "other")
    other.start()
    try:
        claimed = json.loads((tmp_path / "other" / STATE_FILE).read_text())
        claimed.update(owner_pid=2**22 + 9, owner_started=1)
        _write_state(tmp_path / "data", **claimed)
        database = EmbeddedDatabase(tmp_path / "data")
        try:
            assert database.start() != other.url
        finally:
            database.stop()
        assert other._process is not None and other._process.poll() is None
    finally:
        other.stop()


def test_an_adopted_server_that_is_gone_is_not_signalled(first: EmbeddedDatabase, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = json.loads((data_dir / STATE_FILE).read_text())
    state.update(owner_pid=2**22 + 11, owner_started=1)
    (data_dir / STATE_FILE).write_text(json.dumps(state))
    heir = EmbeddedDatabase(data_dir)
    heir.start()
    assert heir.owned and heir._state is not None
    # As if the server had exited and its pid been reused: the recorded start time no longer matches.
    heir._state = replace(heir._state, started=(heir._state.started or 0) + 1)
    heir.stop()
    assert first._process is not None and first._process.poll() is None  # left alone


def test_data_dir_and_everything_in_it_is_private(first: EmbeddedDatabase, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    load_or_create_keys(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "db").stat().st_mode) == 0o700
    for name in (STATE_FILE, LOCK_FILE, KEY_FILE, "embedded-db.log"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    for path in (data_dir / "db").rglob("*"):  # the database's own files (its umask)
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
