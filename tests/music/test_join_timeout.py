"""A voice join Discord never confirms answers with what happened, and leaves nothing behind."""

from __future__ import annotations

import pytest

from app.music import service as music_service
from tests.music.conftest import WorldFactory


async def test_an_unconfirmed_join_says_so_and_the_next_join_works(
    make_world: WorldFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(music_service, "JOIN_TIMEOUT", 1.0)
    world = await make_world()
    user = await world.user_in_voice()
    world.discord.unconfirmed_voice_channels.add(world.voice_channel)

    answer = await world.run(user, "play", query="Song 1")
    assert "Discord didn't confirm in time" in answer.text, answer.text
    assert f"<#{world.voice_channel}>" in answer.text
    assert world.lavalink_player() is None
    assert not [r for r in caplog.records if r.getMessage().startswith("Command /play")]  # not a crash
    assert any("did not confirm joining voice" in r.getMessage() for r in caplog.records)

    # The failed join left no voice client behind: once Discord answers again, /play just works.
    world.discord.unconfirmed_voice_channels.clear()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
