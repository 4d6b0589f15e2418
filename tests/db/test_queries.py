from __future__ import annotations

from datetime import timedelta

import pytest
from pymongo import monitoring
from pymongo.errors import DuplicateKeyError

from app.db import queries
from app.db.models import MusicBot, PlayerSnapshot, ServerMusicBot, ServerStatus, utcnow

pytestmark = pytest.mark.usefixtures("mongo")


class _Writes(monitoring.CommandListener):
    """The write commands sent (only clients created after `register` report: each test's are)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update", "delete", "findAndModify"):
            self.names.append(f"{event.command_name} {event.command.get(event.command_name)}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return


_WRITES = _Writes()
monitoring.register(_WRITES)


async def make_bot(client_id: int, *, enabled: bool = True, name: str = "bot") -> MusicBot:
    return await MusicBot(
        name=name,
        client_id=client_id,
        token_ciphertext=f"ciphertext-{client_id}",
        token_fingerprint=f"fp{client_id}",
        enabled=enabled,
    ).insert()


async def status_of(bot: MusicBot, guild_id: int) -> ServerMusicBot:
    record = await ServerMusicBot.find_one(
        ServerMusicBot.server_id == guild_id, ServerMusicBot.music_bot_id == bot.id
    )
    assert record is not None
    return record


async def test_active_bots_and_lookup_by_client_id() -> None:
    await make_bot(1, name="one")
    await make_bot(2, enabled=False)
    assert [b.name for b in await queries.get_active_music_bots()] == ["one"]
    found = await queries.get_music_bot_by_client_id(2)
    assert found is not None and not found.enabled
    assert await queries.get_music_bot_by_client_id(3) is None


async def test_client_id_and_fingerprint_are_unique() -> None:
    await make_bot(1)
    with pytest.raises(DuplicateKeyError):
        await make_bot(1)
    with pytest.raises(DuplicateKeyError):
        await MusicBot(name="x", client_id=9, token_ciphertext="c", token_fingerprint="fp1").insert()


async def test_activation_is_set_once_and_promotes_pending_invites() -> None:
    bot = await make_bot(1)
    assert bot.id is not None
    await ServerMusicBot(server_id=10, music_bot_id=bot.id, status=ServerStatus.PENDING_INVITE).insert()
    assert await queries.activate_bot_in_guild(bot.id, 10)
    first = await status_of(bot, 10)
    assert first.status is ServerStatus.ACTIVE and first.activated_at is not None
    assert not await queries.activate_bot_in_guild(bot.id, 10)
    again = await status_of(bot, 10)
    assert again.activated_at == first.activated_at
    assert await ServerMusicBot.find(ServerMusicBot.server_id == 10).count() == 1


async def test_deactivate_then_reactivate() -> None:
    bot = await make_bot(1)
    assert bot.id is not None
    await queries.activate_bot_in_guild(bot.id, 10)
    assert await queries.deactivate_bot_in_guild(bot.id, 10)
    removed = await status_of(bot, 10)
    assert removed.status is ServerStatus.REMOVED and removed.removed_at is not None
    assert not await queries.deactivate_bot_in_guild(bot.id, 10)
    assert await queries.activate_bot_in_guild(bot.id, 10)
    back = await status_of(bot, 10)
    assert back.status is ServerStatus.ACTIVE and back.removed_at is None


async def test_reconcile_activates_new_and_removes_gone_guilds() -> None:
    bot = await make_bot(1)
    other = await make_bot(2)
    assert bot.id is not None and other.id is not None
    await queries.activate_bot_in_guild(bot.id, 10)
    await queries.activate_bot_in_guild(bot.id, 11)
    await queries.activate_bot_in_guild(other.id, 11)
    assert await queries.reconcile_bot_guilds(bot.id, [11, 12]) == (1, 1)
    assert (await status_of(bot, 10)).status is ServerStatus.REMOVED
    assert (await status_of(bot, 12)).status is ServerStatus.ACTIVE
    assert (await status_of(other, 11)).status is ServerStatus.ACTIVE  # another bot untouched
    assert await queries.reconcile_bot_guilds(bot.id, [11, 12]) == (0, 0)


async def test_bot_for_guild_and_counts() -> None:
    first = await make_bot(1, name="first")
    disabled = await make_bot(2, enabled=False)
    assert first.id is not None and disabled.id is not None
    await queries.activate_bot_in_guild(disabled.id, 10)
    await queries.activate_bot_in_guild(first.id, 10)
    found = await queries.get_music_bot_for_guild(10)
    assert found is not None and found.name == "first"
    assert await queries.get_music_bot_for_guild(99) is None
    await queries.update_bot_guild_count(1, guild_count=3, user_count=42)
    stored = await queries.get_music_bot_by_client_id(1)
    assert stored is not None and (stored.guild_count, stored.user_count) == (3, 42)


async def test_identify_logs_are_written_and_read_for_many_bots_at_once() -> None:
    now = utcnow().replace(microsecond=0)
    await queries.record_identifies_of_bots({5: [now - timedelta(hours=25), now - timedelta(minutes=1)]})
    await queries.record_identifies_of_bots({5: [now], 6: [now], 7: []})
    await queries.record_identifies_of_bots({5: [now], 6: [now]})  # a retried write: no double count
    logs = await queries.identify_logs([5, 6, 7, 8])
    # The one older than 24 h no longer counts; bots never logged have an empty log.
    assert logs == {5: [now - timedelta(minutes=1), now], 6: [now], 7: [], 8: []}


async def test_update_music_bot_writes_only_real_changes() -> None:
    await make_bot(1, name="old")
    stored = await queries.get_music_bot_by_client_id(1)
    assert stored is not None
    before = stored.updated_at  # as stored: BSON keeps milliseconds
    updated, changed = await queries.update_music_bot(1, enabled=True)  # already enabled
    assert updated is not None and not changed and updated.updated_at == before
    await PlayerSnapshot(bot_id=1, guild_id=10, voice_channel_id=11).insert()
    updated, changed = await queries.update_music_bot(1, name="renamed")
    assert changed and await PlayerSnapshot.find_all().count() == 1  # a rename keeps saved players
    updated, changed = await queries.update_music_bot(1, name="new", enabled=False)
    assert changed and updated is not None and (updated.name, updated.enabled) == ("new", False)
    assert updated.updated_at > before
    assert await PlayerSnapshot.find_all().count() == 0  # disabled: nothing to resume later
    assert await queries.update_music_bot(99, enabled=False) == (None, False)


async def test_delete_music_bot_takes_its_guild_records_and_players_along() -> None:
    gone, kept = await make_bot(1), await make_bot(2)
    assert gone.id is not None and kept.id is not None
    for bot in (gone, kept):
        await queries.activate_bot_in_guild(bot.id, 10)  # type: ignore[arg-type]  # asserted above
        await PlayerSnapshot(bot_id=bot.client_id, guild_id=10, voice_channel_id=11).insert()
    await queries.record_pending_invite(gone.id, 20)
    deleted = await queries.delete_music_bot(1)
    assert deleted is not None and deleted.client_id == 1
    assert await MusicBot.find_all().count() == 1
    assert await ServerMusicBot.find(ServerMusicBot.music_bot_id == gone.id).count() == 0
    assert await ServerMusicBot.find(ServerMusicBot.music_bot_id == kept.id).count() == 1
    assert [s.bot_id for s in await PlayerSnapshot.find_all().to_list()] == [2]
    assert await queries.delete_music_bot(1) is None


async def test_an_invite_sweep_that_finds_nothing_writes_nothing() -> None:
    """Every worker sweeps for expired invites every minute: with none pending (an idle fleet),
    the sweep is a read only, never an (empty) update."""
    bot = await make_bot(1)
    assert bot.id is not None
    await queries.record_pending_invite(bot.id, 10)
    _WRITES.names.clear()
    assert await queries.expire_pending_invites(timedelta(hours=1)) == 0
    assert _WRITES.names == []
    assert (await status_of(bot, 10)).status == ServerStatus.PENDING_INVITE

    await queries.record_pending_invite(bot.id, 11)
    _WRITES.names.clear()
    assert await queries.expire_pending_invites(timedelta(0)) == 2
    assert {(await status_of(bot, g)).status for g in (10, 11)} == {ServerStatus.FAILED}
    assert _WRITES.names == [f"update {ServerMusicBot.Settings.name}"]  # one update_many
