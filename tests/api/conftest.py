"""The music world (fake Discord, fake Lavalink, the real app) for the metrics and dashboard tests."""

from tests.music.conftest import make_world  # noqa: F401  # the fixture, shared with tests/music
