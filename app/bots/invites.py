"""Which bot of the network a guild should invite next, recorded PENDING_INVITE."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.db import queries
from app.db.models import MusicBot, ServerMusicBot, ServerStatus
from app.invite_urls import invite_url
from app.music.fleet import Invite

_log = logging.getLogger(__name__)


async def invite_for(
    guild_id: int, *, default_guild_cap: int, excluded: Callable[[int], bool] | None = None
) -> Invite | None:
    """The least-loaded enabled bot with room that is not in the guild, recorded PENDING_INVITE.

    Only the network's own bots: a clone (a bot with an `owner_id`) runs on its owner's token
    and is invited by its owner alone. A bot already invited to this guild (pending) is
    offered again rather than a new one, and its expiry restarts. Load is the bot's guilds
    plus its pending invites; room is its `guild_cap` (or the default). `excluded(client_id)`
    (the live fleet's view: failed right now, already in the guild) is asked only of the
    candidates read. None when no bot qualifies.

    Cost: the guild's assignments, the pending invites (indexed on `status`), and the bots in
    order of guilds served until no later one can be less loaded (`invite_candidates`), with
    only the fields needed: not every enabled bot of the network on every "all busy" answer.
    """
    assignments = {a.music_bot_id: a for a in await queries.guild_assignments(guild_id)}
    for assignment in assignments.values():
        if assignment.status is ServerStatus.PENDING_INVITE:
            bot = await MusicBot.get(assignment.music_bot_id)
            if bot is not None and bot.enabled and bot.owner_id is None:
                await queries.record_pending_invite(assignment.music_bot_id, guild_id)
                return Invite(client_id=bot.client_id, name=bot.name, url=invite_url(bot.client_id))
    occupied = {bot_id for bot_id, a in assignments.items() if _occupies(a)}
    pending = await queries.pending_invite_counts()
    chosen: queries.InviteCandidate | None = None
    chosen_load = 0
    async for bot in queries.invite_candidates():
        if chosen is not None and bot.guild_count > chosen_load:
            break  # sorted by guilds: every later bot's load is at least its guild count
        load = bot.guild_count + pending.get(bot.id, 0)
        if (
            bot.id in occupied
            or load >= (bot.guild_cap or default_guild_cap)
            or (excluded is not None and excluded(bot.client_id))
        ):
            continue
        if chosen is None or (load, bot.created_at) < (chosen_load, chosen.created_at):
            chosen, chosen_load = bot, load
    if chosen is None:
        return None
    await queries.record_pending_invite(chosen.id, guild_id)
    _log.info("Invite for guild %d: bot %r (%d)", guild_id, chosen.name, chosen.client_id)
    return Invite(client_id=chosen.client_id, name=chosen.name, url=invite_url(chosen.client_id))


def _occupies(assignment: ServerMusicBot) -> bool:
    """The bot is in the guild (working or not): it cannot be invited there again."""
    if assignment.status is ServerStatus.ACTIVE:
        return True
    return assignment.status is ServerStatus.FAILED and assignment.reason != queries.INVITE_EXPIRED
