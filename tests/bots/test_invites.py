"""Network invites offer the network's own bots, never a user's clone."""

from __future__ import annotations

import pytest

from app.bots.invites import invite_for
from app.db import queries
from app.db.models import MusicBot

pytestmark = pytest.mark.usefixtures("mongo")


async def stored(client_id: int, *, guilds: int, owner_id: int | None = None) -> MusicBot:
    return await MusicBot(
        name=f"bot {client_id}",
        client_id=client_id,
        token_ciphertext=f"ciphertext-{client_id}",
        token_fingerprint=f"fp{client_id}",
        guild_count=guilds,
        owner_id=owner_id,
    ).insert()


async def test_a_clone_is_never_offered_to_other_guilds() -> None:
    """The clone is the least loaded bot; it used to be the one offered."""
    await stored(1, guilds=0, owner_id=555)  # someone's clone, on their own token
    await stored(2, guilds=40)
    invite = await invite_for(1000, default_guild_cap=100)
    assert invite is not None and invite.client_id == 2


async def test_only_clones_left_means_no_invite() -> None:
    await stored(1, guilds=0, owner_id=555)
    assert await invite_for(1000, default_guild_cap=100) is None


async def test_a_pending_clone_invite_is_not_offered_again() -> None:
    clone = await stored(1, guilds=0, owner_id=555)
    assert clone.id is not None
    await queries.record_pending_invite(clone.id, 1000)  # left over from before the fix
    await stored(2, guilds=3)
    invite = await invite_for(1000, default_guild_cap=100)
    assert invite is not None and invite.client_id == 2


async def test_pending_invites_count_as_load_and_full_bots_are_skipped() -> None:
    """Candidates are read least guilds first; pending invites still count, caps still hold."""
    busy = await stored(1, guilds=1)
    assert busy.id is not None
    for guild_id in (2001, 2002, 2003):  # three pending invites: load 4
        await queries.record_pending_invite(busy.id, guild_id)
    full = await stored(2, guilds=2)
    full.guild_cap = 2
    await full.save()
    await stored(3, guilds=3)  # load 3: the least loaded with room
    await stored(4, guilds=3)  # as loaded, but newer
    await stored(5, guilds=50)
    invite = await invite_for(1000, default_guild_cap=100)
    assert invite is not None and invite.client_id == 3
    # Bot 3 now has a pending invite too (load 4, like bot 1); bot 4 (load 3) is excluded: the
    # oldest of the least loaded wins, and bot 5 (50 guilds) is never needed to decide.
    invite = await invite_for(1001, default_guild_cap=100, excluded=lambda client_id: client_id == 4)
    assert invite is not None and invite.client_id == 1
