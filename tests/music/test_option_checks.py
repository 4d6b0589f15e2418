"""Values Discord's client would never send, sent anyway: each command refuses them itself.

Discord's API passes any option value through, whatever the command declared; these arrive as a
non-official client would send them, through the fake Discord's real interactions.
"""

from __future__ import annotations

from typing import Any

import wavelink

from app.music.views import search_custom_id
from tests.fakes.discord_interactions import FakeInteraction
from tests.music.conftest import World, WorldFactory


def _refused(answer: FakeInteraction, phrase: str, *never: str) -> None:
    assert answer.ephemeral, answer.text
    assert phrase in answer.text, answer.text
    assert "Something went wrong" not in answer.text
    for value in never:
        assert value not in answer.text


async def _searches(world: World) -> int:
    return len(world.lavalink.requests_matching("GET", "/v4/loadtracks"))


async def test_out_of_range_options_change_nothing(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.run(user, "play", query="Song 2")
    lavalink_player = await world.playing("Song 1")
    player = world.player()
    assert player is not None

    for level in (1000, -1, 151):
        _refused(await world.run(user, "volume", level=level), "from 0 to 150", str(level))
    assert lavalink_player.volume == 100 and player.volume == 100
    assert "Volume set to 150%" in (await world.run(user, "volume", level=150)).text

    searches = await _searches(world)
    _refused(await world.run(user, "play", query="x" * 2000), "at most 500 characters", "xxxx")
    _refused(await world.run(user, "search", query="y" * 201), "at most 200 characters", "yyyy")
    _refused(await world.run(user, "play", query="   "), "must not be empty")
    assert await _searches(world) == searches  # nothing was searched

    for count in (0, 101, -5):
        _refused(await world.run(user, "skip", count=count), "from 1 to 100")
    for positions in ("0", "-1", "10001", "7-3", "1-x", "1" * 30):
        _refused(await world.run(user, "remove", positions=positions), "queue position")
    backwards: dict[str, Any] = {"from": "1", "to": 0}  # `from` is a keyword: the options by name
    _refused(await world.run(user, "move", **backwards), "queue position")
    _refused(await world.run(user, "seek", time="1" * 40), "at most 12 characters")
    assert [track.title for track in player.queue] == ["Song 2"]
    assert player.current is not None and player.current.title == "Song 1"


async def test_values_of_the_wrong_kind_or_outside_the_choices(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    await world.run(user, "play", query="Song 1")
    await world.playing("Song 1")
    player = world.player()
    assert player is not None

    # Right option name, wrong JSON type: an integer option given a string, a string given a number.
    wrong_types: list[dict[str, Any]] = [
        {"name": "level", "type": 4, "value": "loud"},
        {"name": "level", "type": 4, "value": 50.5},
        {"name": "level", "type": 4, "value": True},
    ]
    for option in wrong_types:
        answer = await world.discord.send_command(
            world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
            name="volume", options=[option],
        )  # fmt: skip
        await answer.wait_for_message(lambda m: bool(m.text), timeout=10)
        _refused(answer, "from 0 to 150")
    assert player.volume == 100

    _refused(await world.run(user, "loop", mode="forever"), "off, track, queue")
    assert player.queue.mode is wavelink.QueueMode.normal
    _refused(await world.run(user, "autoplay", state="maybe"), "on, off")
    assert player.autoplay is wavelink.AutoPlayMode.partial
    _refused(await world.run(user, "filter", preset="louder"), "bassboost")
    assert player.filter_preset == "reset"
    manager = world.discord.add_user(name="Admin")
    world.discord.add_member(world.guild.id, manager, permissions=0x20)  # Manage Server
    _refused(await world.run(manager, "247", state="forever"), "on, off")
    _refused(await world.run(manager, "settings", subcommand="announcements", state=1), "on, off")
    assert not (await world.service().guild_settings.get(world.guild.id)).stay_24_7


async def test_a_forged_search_pick_is_refused(make_world: WorldFactory) -> None:
    world = await make_world()
    user = await world.user_in_voice()
    search = await world.run(user, "search", query="Song")
    message = search.messages[0]
    pick_id = search_custom_id(world.bot.client_id, world.guild.id)
    for forged in ("99", "-1", "first"):
        pick = await world.discord.select(world.bot, message, pick_id, [forged], user=user, forged=True)
        await pick.wait_for_message(lambda m: bool(m.text), timeout=10)
        _refused(pick, "not one of the results")
    assert world.player() is None  # nothing was queued, nobody joined
    pick = await world.discord.select(world.bot, message, pick_id, ["0"], user=user)
    await pick.wait_for_response()
    await world.playing("Song 1")
