"""Clones: a user brings their own bot token and gets their own copy of the bot.

`/clone` (the token goes into a modal, never into a visible command option), `/clones`,
`/clone_stop` and `/clone_stats`. Every answer is ephemeral. All four need `CLONE_ENABLED`;
`/clone` also needs the receiving bot to be marked `can_clone`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from pymongo.errors import PyMongoError

from app.bots.clones import format_uptime, may_clone, network_stats
from app.bots.command_sync import SyncTarget, sync_commands
from app.bots.commands import command_payloads
from app.bots.registry import NAME_MAX, DuplicateBot, InvalidBotToken, RegistrationError, register_bot
from app.bots.status import BotState
from app.db import queries
from app.db.connection import interactive
from app.db.models import MusicBot
from app.i18n import Tr
from app.invite_urls import invite_url
from app.music.access import member_of
from app.music.errors import MusicError, NotAllowed
from app.music.language import tr
from app.music.options import TEXT_MAX, check_text
from app.music.replies import reply_failure
from app.music.service import MusicService
from app.tokens import InvalidTokenFormat, client_id_from_token

if TYPE_CHECKING:
    from app.bots.manager import BotManager
    from app.bots.runner import BotRunner
    from app.settings import Settings

_log = logging.getLogger(__name__)

# How long the answer to the modal waits for the new bot to be ready (or to fail) before saying
# it is still starting. Discord allows 15 minutes of followups after the defer.
START_WAIT = 5.0
# The interaction token lives 15 minutes; a modal left open longer cannot be answered anyway.
MODAL_TIMEOUT = 15 * 60.0
EMBED_LIMIT = 4000  # below Discord's 4096 characters of embed description
AUTOCOMPLETE_LIMIT = 25


# -- checks shared by the commands -------------------------------------------------------------


@contextlib.contextmanager
def _database(what: str) -> Iterator[None]:
    """A database error becomes a short ephemeral answer (and a log line), not "something went wrong"."""
    try:
        with interactive():  # answered within Discord's 3 s, or deferred before this
            yield
    except PyMongoError as exc:
        _log.warning("%s: database unavailable (%s)", what, exc)
        raise MusicError("clone.database_down") from None


def _clone_settings(manager: BotManager) -> BotManager:
    if not manager.settings.clone_enabled:
        raise MusicError("clone.unavailable")
    return manager


async def _require_can_clone(manager: BotManager, bot_id: int) -> None:
    """This bot offers /clone. `can_clone` is read from the database, not from the runner's copy
    of the record: the hot-reload watcher ignores changes to that field."""
    _clone_settings(manager)
    with _database("/clone"):
        record = await queries.get_music_bot_by_client_id(bot_id)
    if record is None or not record.can_clone:
        raise MusicError("clone.unavailable")


def _require_clone_permission(settings: Settings, member: discord.Member) -> None:
    roles = [role.id for role in member.roles]
    if not may_clone(member.id, roles, owners=settings.owner_id_set, allowed=settings.clone_allowed_id_set):
        raise NotAllowed("clone.not_allowed")


async def _require_room_for_one_more(
    manager: BotManager, user_id: int, *, replacing: int | None = None
) -> None:
    """The per-user cap counts the user's clones that are enabled and not failed: a clone stopped
    with /clone_stop, or one that failed (a reset token), frees its place, so its owner can bring
    it back with a new token (`replacing`: that clone's application). Owners have no cap."""
    settings = manager.settings
    if user_id in settings.owner_id_set:
        return
    cap = settings.clone_max_per_user
    if cap == 0:
        raise NotAllowed("clone.owners_only")
    with _database("/clone"):
        records = await MusicBot.find(MusicBot.owner_id == user_id, MusicBot.enabled == True).to_list()  # noqa: E712
    running = sum(
        1
        for record in records
        if record.client_id != replacing
        and not (
            (status := manager.status_of(record.client_id)) is not None and status.state is BotState.FAILED
        )
    )
    if running >= cap:
        raise NotAllowed("clone.cap_reached", running=running, cap=cap)


async def _own_application(token: str, user_id: int) -> int | None:
    """The application of `token` if the user already owns a clone of it (a token reset)."""
    try:
        client_id = client_id_from_token(token)
    except InvalidTokenFormat:
        return None
    with _database("/clone"):
        existing = await queries.get_music_bot_by_client_id(client_id)
    return client_id if existing is not None and existing.owner_id == user_id else None


async def _visible_clones(user_id: int, *, every: bool, enabled_only: bool = False) -> list[MusicBot]:
    """The user's clones (every clone, for an owner), oldest first."""
    query: dict[str, Any] = {"owner_id": {"$ne": None} if every else user_id}
    if enabled_only:
        query["enabled"] = True
    return await MusicBot.find(query).sort("+created_at").to_list()


def _status_text(manager: BotManager, record: MusicBot, t: Tr) -> str:
    if not record.enabled:
        return t("clone.status_stopped")
    status = manager.status_of(record.client_id)  # wherever in the fleet it runs
    if status is None or status.worker is None:
        return t("clone.status_not_running")
    if status.state is BotState.FAILED:
        return t("clone.status_failed", reason=status.last_error or t("clone.unknown_reason"))
    return status.state.value


def _invite_view(name: str, client_id: int, t: Tr) -> discord.ui.View:
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label=t("invite.button", name=name)[:80], url=invite_url(client_id)))
    return view


# -- the modal ---------------------------------------------------------------------------------


class CloneModal(discord.ui.Modal):
    """The token field. Its custom id stays random: discord.py keys open modals by custom id
    alone, so a fixed one would let two users' modals replace each other."""

    def __init__(self, manager: BotManager, t: Tr) -> None:
        super().__init__(title=t("clone.modal_title"), timeout=MODAL_TIMEOUT)
        self._manager = manager
        self._t = t
        self.token_input: discord.ui.TextInput[CloneModal] = discord.ui.TextInput(
            custom_id="clone:token",
            style=discord.TextStyle.short,
            min_length=50,
            max_length=100,
            required=True,
            placeholder=t("clone.token_placeholder"),
        )
        self.name_input: discord.ui.TextInput[CloneModal] = discord.ui.TextInput(
            custom_id="clone:name",
            style=discord.TextStyle.short,
            max_length=NAME_MAX,
            required=False,
            placeholder=t("clone.name_placeholder"),
        )
        self.add_item(
            discord.ui.Label(
                text=t("clone.token_label"),
                description=t("clone.token_help"),
                component=self.token_input,
            )
        )
        self.add_item(discord.ui.Label(text=t("clone.name_label"), component=self.name_input))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        # Validation calls Discord (GET /users/@me): acknowledge within the 3 s first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        member = member_of(interaction)
        settings = self._manager.settings
        # Checked again: the allow-list, the cap or other modals may have changed things since.
        _require_clone_permission(settings, member)
        token = self.token_input.value
        await _require_room_for_one_more(
            self._manager, member.id, replacing=await _own_application(token, member.id)
        )
        try:
            record = await register_bot(
                token,
                cipher=self._manager.cipher,
                name=self.name_input.value.strip() or None,
                owner_id=member.id,
                owner_may_replace=True,
            )
        except InvalidBotToken as exc:
            reason = str(exc).removeprefix("token: ")
            raise MusicError("clone.token_invalid", reason=_safe(reason, token)) from None
        except DuplicateBot as exc:
            raise MusicError("clone.duplicate", reason=_safe(str(exc), token)) from None
        except RegistrationError as exc:
            raise MusicError("clone.not_registered", reason=_safe(str(exc), token)) from None
        except PyMongoError as exc:
            _log.warning("/clone: database unavailable (%s)", exc)
            raise MusicError("clone.database_down") from None
        await interaction.followup.send(
            await self._started(record),
            view=_invite_view(record.name, record.client_id, self._t),
            ephemeral=True,
        )

    async def _started(self, record: MusicBot) -> str:
        """Start the clone now (the hot-reload watcher may also see the insert: `sync_bot` is
        idempotent), deploy its slash commands, and say whether it came online."""
        await self._manager.sync_bot(record.client_id, record)
        runner = self._manager.get_runner(record.client_id)
        deployed, _ = await asyncio.gather(self._deploy_commands(record), _wait_started(runner))
        t = self._t
        if runner is not None and runner.state is BotState.READY:
            text = t("clone.online", name=record.name)
        elif runner is not None and runner.state is BotState.FAILED:
            text = t(
                "clone.start_failed", name=record.name, reason=runner.last_error or t("clone.unknown_reason")
            )
        else:
            text = t("clone.starting", name=record.name)
        if deployed is not None and not (runner is not None and runner.state is BotState.FAILED):
            text += "\n" + t("clone.commands_failed", reason=deployed)
        return text

    async def _deploy_commands(self, record: MusicBot) -> str | None:
        """A clone nobody deploys commands for has no slash commands at all: creating it is the
        deliberate act that deploys them (REST only, as `chorus deploy-commands`). Returns the
        failure, if any."""
        target = SyncTarget(record.name, record.client_id, None, record.token_ciphertext)
        (result,) = await sync_commands([target], await command_payloads(), cipher=self._manager.cipher)
        return None if result.ok else result.detail

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await reply_failure(interaction, error, lang=self._t.language)


async def _wait_started(runner: BotRunner | None) -> None:
    if runner is not None:
        with contextlib.suppress(TimeoutError):
            await runner.wait_for_state(BotState.READY, BotState.FAILED, timeout=START_WAIT)


def _safe(message: str, token: str) -> str:
    """Belt and braces: the registry's messages never contain the token; make sure of it."""
    return message.replace(token.strip(), "[token]") if token.strip() else message


# -- the commands ------------------------------------------------------------------------------


class Clones(commands.Cog):
    def __init__(self, music: MusicService, manager: BotManager | None) -> None:
        self.music = music
        self._manager = manager

    @property
    def manager(self) -> BotManager:
        """Reached only by running bots; None only in a command set built for deploy-commands."""
        if self._manager is None:
            raise RuntimeError("this command set was built for deploy-commands and runs nothing")
        return _clone_settings(self._manager)

    @app_commands.command(name="clone", description="Run your own copy of this bot with your own bot token")
    @app_commands.guild_only()
    async def clone(self, interaction: discord.Interaction) -> None:
        member = member_of(interaction)
        manager = self.manager
        await _require_can_clone(manager, self.music.bot_id)
        _require_clone_permission(manager.settings, member)
        await _require_room_for_one_more(manager, member.id)
        await interaction.response.send_modal(CloneModal(manager, tr(interaction)))

    @app_commands.command(name="clones", description="Your clones and their status")
    @app_commands.guild_only()
    async def clones(self, interaction: discord.Interaction) -> None:
        manager = self.manager
        every = interaction.user.id in manager.settings.owner_id_set
        t = tr(interaction)
        with _database("/clones"):
            records = await _visible_clones(interaction.user.id, every=every)
        if not records:
            await interaction.response.send_message(t("clone.none"), ephemeral=True)
            return
        lines: list[str] = []
        for index, record in enumerate(records):
            line = f"**{record.name}** · `{record.client_id}` · {_status_text(manager, record, t)}"
            line += " · " + t("clone.servers", count=record.guild_count)
            if every:
                line += " · " + t("clone.owner", owner=f"<@{record.owner_id}>")
            if sum(len(x) + 1 for x in lines) + len(line) > EMBED_LIMIT - 40:
                lines.append(t("clone.and_more", count=len(records) - index))
                break
            lines.append(line)
        title = t("clone.every_title") if every else t("clone.yours_title")
        embed = discord.Embed(title=title, description="\n".join(lines))
        if not every:
            embed.set_footer(text=t("clone.cap_footer", cap=manager.settings.clone_max_per_user))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="clone_stop", description="Stop and disable one of your clones")
    @app_commands.describe(bot="The clone to stop (its name or id)")
    @app_commands.guild_only()
    async def clone_stop(
        self, interaction: discord.Interaction, bot: app_commands.Range[str, 1, 100]
    ) -> None:
        check_text(bot, what="bot")
        manager = self.manager
        user_id = interaction.user.id
        owner = user_id in manager.settings.owner_id_set
        with _database("/clone_stop"):
            record = await _find_clone(bot, user_id, every=owner)
            if record is None:
                raise MusicError("clone.stop_unknown")
            if record.owner_id is None:
                raise NotAllowed("clone.stop_not_a_clone", name=record.name)
            if record.owner_id != user_id and not owner:
                raise NotAllowed("clone.stop_not_owner")
            if not record.enabled:
                raise MusicError("clone.stop_already", name=record.name)
            stopped, _ = await queries.update_music_bot(record.client_id, enabled=False)
        if stopped is None:
            raise MusicError("clone.stop_removed")
        record = stopped
        # Stopping leaves voice channels and closes the gateway: it may take longer than 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await manager.sync_bot(record.client_id, record)
        _log.info("Clone %r (%d) stopped by user %d", record.name, record.client_id, user_id)
        await interaction.followup.send(tr(interaction)("clone.stopped", name=record.name), ephemeral=True)

    @clone_stop.autocomplete("bot")
    async def clone_stop_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        try:
            manager = self.manager
            every = interaction.user.id in manager.settings.owner_id_set
            records = await _visible_clones(interaction.user.id, every=every, enabled_only=True)
        except (MusicError, PyMongoError):
            return []
        text = current.strip().lower()[:TEXT_MAX]
        return [
            app_commands.Choice(name=f"{record.name} ({record.client_id})"[:100], value=str(record.client_id))
            for record in records
            if text in record.name.lower() or text in str(record.client_id)
        ][:AUTOCOMPLETE_LIMIT]

    @app_commands.command(name="clone_stats", description="Statistics of the whole bot network")
    @app_commands.guild_only()
    async def clone_stats(self, interaction: discord.Interaction) -> None:
        manager = self.manager
        stats = network_stats(manager)
        disabled: int | None = None
        clones: int | None = None
        try:
            disabled = await MusicBot.find(MusicBot.enabled == False).count()  # noqa: E712
            clones = await MusicBot.find({"owner_id": {"$ne": None}, "enabled": True}).count()
        except PyMongoError as exc:
            _log.warning("/clone_stats: database unavailable (%s)", exc)
        states = [
            f"{state.value}: {stats.by_state[state]}" for state in BotState if stats.by_state.get(state)
        ]
        t = tr(interaction)
        if disabled:
            states.append(f"{t('clone.stats_disabled')}: {disabled}")
        embed = discord.Embed(title=t("clone.stats_title"))
        embed.add_field(
            name=t("clone.stats_bots"), value=", ".join(states) or t("clone.stats_none"), inline=False
        )
        if clones is not None:
            embed.add_field(name=t("clone.stats_clones"), value=str(clones))
        embed.add_field(
            name=t("clone.stats_servers"),
            value=t("clone.stats_servers_value", servers=stats.servers, memberships=stats.memberships),
        )
        embed.add_field(name=t("clone.stats_players"), value=str(stats.players))
        embed.add_field(name=t("clone.stats_tracks"), value=str(stats.tracks_played))
        embed.add_field(name=t("clone.stats_uptime"), value=format_uptime(stats.uptime))
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def _find_clone(text: str, user_id: int, *, every: bool) -> MusicBot | None:
    """The autocomplete value (a client id), or a name typed by hand among the visible clones."""
    text = text.strip()
    if text.isdigit():
        record = await queries.get_music_bot_by_client_id(int(text))
        if record is not None:
            return record
    named = [r for r in await _visible_clones(user_id, every=every) if r.name.lower() == text.lower()]
    return next((r for r in named if r.enabled), named[0] if named else None)


async def setup(bot: commands.Bot, music: MusicService, manager: BotManager | None) -> None:
    await bot.add_cog(Clones(music, manager))
