"""What the fleet layer asks of the process that runs bots (implemented by `BotManager`).

The coordinator decides which bots this worker may run (leases); the host runs them. Kept as a
small interface so the lease logic never reaches into runners, clients or music.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from app.db.models import LeaseStatus


class BotHost(Protocol):
    def wanted(self) -> Collection[int]:
        """Bots that should run somewhere in the fleet: the enabled ones."""
        ...

    def known(self) -> Collection[int]:
        """Every stored bot, enabled or not (a lease of any other bot belongs to a deleted one)."""
        ...

    def running(self) -> Collection[int]:
        """Bots with a runner in this process."""
        ...

    def idle(self) -> Collection[int]:
        """Running bots with no player: the cheapest to hand over."""
        ...

    async def run_bot(self, client_id: int, epoch: int) -> bool:
        """Start the bot under the lease of `epoch` (restarting a runner of another epoch).
        False: it should not run any more (disabled meanwhile); the lease goes back."""
        ...

    async def hand_over(self, client_id: int) -> bool:
        """Stop the bot gracefully before its lease is released: save its players (fenced by its
        epoch), leave voice, close its gateway session. False: the session could not be shown
        closed, so the lease must not be released yet."""
        ...

    async def identifies_written(self, client_ids: Collection[int]) -> None:
        """Wait (bounded, once for all of them) until the IDENTIFYs these stopped bots sent are
        in their logs: their next owner reads a bot's log before its first IDENTIFY. Called
        before their leases are released, outside the hand-overs' concurrency limit."""
        ...

    async def save_players(self, client_ids: Collection[int], *, timeout: float) -> None:
        """The drain's first step: the players of these bots in one bulk write (fenced by their
        epochs), so that each bot's own save in its hand-over finds nothing left to write."""
        ...

    async def close_bots(self, client_ids: Collection[int], *, deadline: float, save: bool) -> None:
        """The drain's last step: stop these bots (leases kept) with the process's one paced stop
        (`app/bots/fleet_stop.stop_runners`), within `deadline` seconds. `save`: the database is
        reachable, so their players are saved in one bulk write first (fenced by their epochs)."""
        ...

    async def drop_bot(self, client_id: int) -> None:
        """The lease is lost: end the gateway session now, without touching the database."""
        ...

    async def restart_here(self, client_id: int) -> None:
        """A fresh client under the same lease (an operator's restart from any worker)."""
        ...

    def summary(self) -> tuple[int, tuple[int, int]]:
        """(bots running, (Lavalink nodes connected, configured)): published with the heartbeat."""
        ...

    def start_done(self, client_id: int) -> bool:
        """The bot's start is past its costly part (its gateway session is open: READY received;
        or it is ready, failed, stopped, or not running here): the paced starts free its slot
        without waiting for discord.py's wait for guilds after READY."""
        ...

    def lease_status(self, client_id: int) -> LeaseStatus | None:
        """The bot's state as published in its lease (None: not running here)."""
        ...

    def can_take_interaction(self, client_id: int) -> bool:
        """The bot runs here and is ready: an interaction forwarded to it can be run now."""
        ...

    def take_interaction(
        self, client_id: int, payload: dict[str, Any], *, deferred: bool, public_defer: bool
    ) -> None:
        """Run a forwarded interaction (the raw gateway payload) on the bot, as if it had
        received it; it answers through the interaction's token (with a followup when the
        receiving bot had already deferred it)."""
        ...
