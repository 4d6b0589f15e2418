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
