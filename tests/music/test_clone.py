"""The clone commands through real interactions: /clone's modal, /clones, /clone_stop, /clone_stats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from app.bots.clones import format_uptime, may_clone
from app.bots.status import BotState
from app.tokens import TokenCipher
from tests.fakes.discord import FakeBot, FakeDiscord, FakeUser, make_fake_token
from tests.fakes.discord_interactions import FakeInteraction
from tests.music.conftest import World, WorldFactory

Mongo = AsyncMongoClient[dict[str, Any]]


def _bots(world: World, mongo: Mongo) -> Any:
    assert world.settings is not None
    return mongo[world.settings.mongodb_database]["music_bots"]


async def _allow_cloning(world: World, mongo: Mongo, bot: FakeBot | None = None) -> None:
    bot = bot or world.bot
    await _bots(world, mongo).update_one({"client_id": bot.client_id}, {"$set": {"can_clone": True}})


async def _open_modal(world: World, user: FakeUser) -> FakeInteraction:
    """/clone as `user`; the interaction is answered with the modal."""
    opened = await world.discord.send_command(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user, name="clone"
    )
    await opened.wait_for_response()
    assert opened.modal is not None, opened.text
    return opened


async def _clone(world: World, user: FakeUser, token: str, *, name: str | None = None) -> FakeInteraction:
    """/clone, then submit `token` (and `name`) in its modal; returns the submit interaction once answered."""
    opened = await _open_modal(world, user)
    values = {"clone:token": token} if name is None else {"clone:token": token, "clone:name": name}
    submitted = await world.discord.submit_modal(world.bot, interaction=opened, values=values, user=user)
    await submitted.wait_for_message(lambda m: bool(m.text), timeout=30)
    assert submitted.ephemeral
    return submitted


async def _stop(world: World, user: FakeUser, which: str) -> FakeInteraction:
    """/clone_stop bot:<which> (`World.run` has its own `bot` argument)."""
    interaction = await world.discord.send_command(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=user,
        name="clone_stop", options={"bot": which},
    )  # fmt: skip
    await interaction.wait_for_message(lambda message: bool(message.text), timeout=30)
    return interaction


def _refused(interaction: FakeInteraction, *phrases: str) -> None:
    assert interaction.ephemeral and interaction.modal is None
    for phrase in phrases:
        assert phrase in interaction.text, interaction.text


def _no_token_in(world: World, token: str) -> None:
    for interaction in world.discord.interactions:
        assert token not in interaction.text


async def _assert_stored_clone(world: World, mongo: Mongo, clone: FakeBot, owner: FakeUser) -> None:
    """The clone's record is owned by `owner`, enabled, and holds its current token encrypted only."""
    stored = await _bots(world, mongo).find_one({"client_id": clone.client_id})
    assert stored is not None and stored["owner_id"] == owner.id and stored["enabled"] is True
    assert clone.token not in repr(stored)
    assert world.settings is not None
    assert TokenCipher(world.settings.encryption_keys).decrypt(stored["token_ciphertext"]) == clone.token


async def _owners_world(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> tuple[World, FakeUser]:
    """A world with cloning on, its bot marked can_clone, and the owner of the network."""
    owner = fake_discord.add_user(name="Owner")
    world = await make_world(clone_enabled=True, owner_ids=str(owner.id))
    await _allow_cloning(world, mongo)
    return world, owner


async def test_an_owner_clones_through_the_modal_then_lists_and_stops_it(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    world, owner = await _owners_world(make_world, fake_discord, mongo)
    listener = await world.user_in_voice()
    await world.run(listener, "play", query="Song 1")
    await world.playing("Song 1")
    clone_bot = world.discord.add_bot(name="My Clone")

    answer = await _clone(world, owner, clone_bot.token)

    assert "My Clone" in answer.text and "online" in answer.text
    [button] = answer.messages[0].buttons
    assert button.url is not None and f"client_id={clone_bot.client_id}" in button.url
    runner = world.app.manager.get_runner(clone_bot.client_id)
    assert runner is not None and runner.state is BotState.READY
    # Its slash commands were deployed with it: the clone is usable at once.
    deployed = {command["name"] for command in world.discord.get_commands(clone_bot.client_id)}
    assert {"play", "clone", "clones"} <= deployed
    await _assert_stored_clone(world, mongo, clone_bot, owner)

    listed = await world.run(owner, "clones")
    assert listed.ephemeral and "My Clone" in listed.text and "ready" in listed.text
    # Owners are not capped: the modal opens again although the cap (1) is reached.
    await _open_modal(world, owner)

    stranger = world.discord.add_user(name="Stranger")
    stats = await world.run(stranger, "clone_stats")
    assert stats.ephemeral
    fields = stats.text.splitlines()
    assert "ready: 2" in fields and "Clones" in fields
    for name, value in (("Active players", "1"), ("Tracks played", "1")):
        assert fields[fields.index(name) + 1] == value
    assert "Uptime" in fields and "Servers" in fields

    suggest = await world.discord.send_autocomplete(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=owner,
        name="clone_stop", focused="bot", options={"bot": "my"},
    )  # fmt: skip
    await suggest.wait_for_response()
    assert suggest.choices == [
        {"name": f"My Clone ({clone_bot.client_id})", "value": str(clone_bot.client_id)}
    ]
    nothing = await world.discord.send_autocomplete(
        world.bot, guild_id=world.guild.id, channel_id=world.text_channel, user=stranger,
        name="clone_stop", focused="bot",
    )  # fmt: skip
    await nothing.wait_for_response()
    assert nothing.choices == []

    _refused(await _stop(world, stranger, str(clone_bot.client_id)), "Only the clone's owner")
    _refused(await _stop(world, owner, str(world.bot.client_id)), "is not a clone")
    assert world.app.manager.get_runner(clone_bot.client_id) is not None

    stopped = await _stop(world, owner, str(clone_bot.client_id))
    assert stopped.ephemeral and "Stopped **My Clone**" in stopped.text
    assert world.app.manager.get_runner(clone_bot.client_id) is None
    stored = await _bots(world, mongo).find_one({"client_id": clone_bot.client_id})
    assert stored is not None and stored["enabled"] is False
    assert "stopped" in (await world.run(owner, "clones")).text
    _refused(await _stop(world, owner, "My Clone"), "already stopped")
    _no_token_in(world, clone_bot.token)


async def test_who_may_clone_and_the_per_user_cap(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    owner = fake_discord.add_user(name="Owner")
    friend = fake_discord.add_user(name="Friend")
    world = await make_world(
        clone_enabled=True, owner_ids=str(owner.id), clone_allowed_ids=str(friend.id), clone_max_per_user=1
    )
    await _allow_cloning(world, mongo)
    role = world.discord.add_role(world.guild.id, "Cloners")
    # Role ids are only known once the guild exists: allow the role on the running settings.
    world.app.manager.settings.clone_allowed_ids = f"{friend.id},{role}"
    member = world.discord.add_user(name="Member")
    world.discord.add_member(world.guild.id, member, roles=[role])
    stranger = world.discord.add_user(name="Stranger")
    first, second, friends = (world.discord.add_bot(name=n) for n in ("First", "Second", "Friend's"))

    _refused(await world.run(stranger, "clone"), "not allowed")

    assert "online" in (await _clone(world, member, first.token)).text  # allowed by role
    _refused(await world.run(member, "clone"), "already have 1 clone(s) running", "(1)")
    assert "online" in (await _clone(world, friend, friends.token)).text  # allowed by user id

    mine = await world.run(member, "clones")
    assert "First" in mine.text and "Friend's" not in mine.text
    every = await world.run(owner, "clones")
    assert "First" in every.text and "Friend's" in every.text and f"<@{member.id}>" in every.text

    assert "Stopped" in (await _stop(world, member, "First")).text  # its owner
    assert world.app.manager.get_runner(first.client_id) is None
    # A stopped clone frees its place.
    assert "online" in (await _clone(world, member, second.token)).text
    await _assert_stored_clone(world, mongo, second, member)
    for bot in (first, second, friends):
        _no_token_in(world, bot.token)


async def test_tokens_that_cannot_be_cloned_are_refused_with_the_reason(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    world, owner = await _owners_world(make_world, fake_discord, mongo)
    revoked = world.discord.add_bot(name="Revoked")
    await world.discord.revoke_token(revoked)
    malformed = "x" * 60

    duplicate = await _clone(world, owner, world.bot.token)
    assert "already part of the network" in duplicate.text and "Chorus 1" in duplicate.text
    assert "not a Discord bot token" in (await _clone(world, owner, malformed)).text
    rejected = await _clone(world, owner, revoked.token)
    assert "doesn't work" in rejected.text and "401" in rejected.text

    assert await _bots(world, mongo).count_documents({}) == 1
    assert {runner.client_id for runner in world.app.manager.runners} == {world.bot.client_id}

    # Valid for REST, refused on the gateway: stored, and the answer says why it is not online.
    no_intents = world.discord.add_bot(name="No Intents")
    no_intents.identify_close_code = 4014
    failed = await _clone(world, owner, no_intents.token)
    assert "could not start" in failed.text and "disallowed intents" in failed.text
    assert "failed: disallowed intents" in (await world.run(owner, "clones")).text
    for token in (world.bot.token, revoked.token, malformed, no_intents.token):
        _no_token_in(world, token)


async def test_cloning_needs_clone_enabled_and_a_bot_marked_can_clone(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    owner = fake_discord.add_user(name="Owner")
    world = await make_world(clone_enabled=True, owner_ids=str(owner.id))

    _refused(await world.run(owner, "clone"), "Cloning isn't available on this bot")

    await _allow_cloning(world, mongo)  # read live: no restart
    await _open_modal(world, owner)

    world.app.manager.settings.clone_enabled = False
    for command in ("clone", "clones", "clone_stats"):
        _refused(await world.run(owner, command), "Cloning isn't available on this bot")


def test_who_may_clone_without_discord() -> None:
    owners, allowed = {1}, {10, 20}
    assert may_clone(1, [], owners=owners, allowed=allowed)
    assert may_clone(10, [], owners=owners, allowed=allowed)
    assert may_clone(2, [5, 20], owners=owners, allowed=allowed)
    assert not may_clone(2, [5], owners=owners, allowed=allowed)


def test_uptime_shows_the_two_largest_units() -> None:
    assert format_uptime(timedelta(seconds=65)) == "1m 5s"
    assert format_uptime(timedelta(hours=3, minutes=4, seconds=9)) == "3h 4m"
    assert format_uptime(timedelta(days=2, hours=3, minutes=4)) == "2d 3h 4m"


async def test_a_clone_whose_token_was_reset_comes_back_with_the_new_one(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    user = fake_discord.add_user(name="Cloner")
    world = await make_world(clone_enabled=True, clone_allowed_ids=str(user.id), clone_max_per_user=1)
    await _allow_cloning(world, mongo)
    world.discord.add_member(world.guild.id, user)
    mine = fake_discord.add_bot(name="Mine")
    await _clone(world, user, mine.token)
    await world.app.wait_for(mine, BotState.READY)

    # The token is reset in the Developer Portal: the running clone fails, its owner is told.
    old_token = mine.token
    await fake_discord.revoke_token(mine)
    await world.app.wait_for(mine, BotState.FAILED)
    dm = await fake_discord.wait_for_dm(user)
    assert "Mine" in dm.text and "clone it again" in dm.text
    fake_discord.set_token(mine, make_fake_token(mine.client_id))

    # At the cap (1), but the failed clone frees its place: the new token replaces the old one.
    answer = await _clone(world, user, mine.token)
    assert "already" not in answer.text, answer.text
    await world.app.wait_for(mine, BotState.READY)
    await _assert_stored_clone(world, mongo, mine, user)
    assert await _bots(world, mongo).count_documents({"owner_id": user.id}) == 1
    # Running again, it holds the user's one place: no further clone.
    again = await world.run(user, "clone")
    _refused(again, "You already have 1 clone(s) running")
    _no_token_in(world, mine.token)
    _no_token_in(world, old_token)


async def test_a_token_typed_as_the_clones_name_is_refused_and_never_echoed(
    make_world: WorldFactory, fake_discord: FakeDiscord, mongo: Mongo
) -> None:
    world, owner = await _owners_world(make_world, fake_discord, mongo)
    clone_bot = world.discord.add_bot(name="Named")
    other = world.discord.add_bot(name="Other")

    for name in (clone_bot.token, other.token, f"x {other.token}"[:80]):
        answer = await _clone(world, owner, clone_bot.token, name=name)
        assert answer.ephemeral and "can't be registered" in answer.text and "looks like" in answer.text
    assert await _bots(world, mongo).count_documents({}) == 1
    assert world.app.manager.get_runner(clone_bot.client_id) is None
    assert "online" in (await _clone(world, owner, clone_bot.token, name="Named")).text
    for bot in (clone_bot, other):
        _no_token_in(world, bot.token)
