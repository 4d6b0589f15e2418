"""JSON log lines from a running fleet name the bot, the guild and the command (log context)."""

from __future__ import annotations

from typing import Any

from tests.json_logs import JsonLines, capture_json_logs
from tests.music.conftest import WorldFactory, until


async def test_the_runner_and_the_command_name_their_lines(make_world: WorldFactory) -> None:
    with capture_json_logs() as json_logs:
        await _play_and_check(make_world, json_logs)


async def _play_and_check(make_world: WorldFactory, json_logs: JsonLines) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")

    def joined() -> dict[str, Any] | None:
        return next((line for line in json_logs.objects() if " joined voice " in line["message"]), None)

    await until(lambda: joined() is not None)
    line = joined()
    assert line is not None
    assert line["bot_id"] == str(world.bot.client_id)
    assert line["guild_id"] == str(world.guild.id)
    assert line["command"] == "play"
    # A bot's own tasks (its supervisor, its Lavalink connections) carry its id as well.
    connected = [line for line in json_logs.objects() if line["logger"] == "app.music.nodes"]
    ready = [line for line in json_logs.objects() if "is ready in" in line["message"]]
    assert all(line.get("bot_id") == str(world.bot.client_id) for line in connected + ready)
    assert ready
