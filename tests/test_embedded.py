from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded import STATE_FILE, EmbeddedDatabase, EmbeddedState


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
    dead_owner = EmbeddedState(pid=state["pid"], port=state["port"], owner_pid=2**22 + 12345)
    (data_dir / STATE_FILE).write_text(
        json.dumps({"pid": dead_owner.pid, "port": dead_owner.port, "owner_pid": dead_owner.owner_pid})
    )
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
