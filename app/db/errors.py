"""Lookup errors shared by every writer of the fleet's records (API, CLI, cogs)."""

from __future__ import annotations

__all__ = ("UnknownBot",)


class UnknownBot(LookupError):
    """No stored bot has that application id."""

    def __init__(self, client_id: int) -> None:
        super().__init__(f"no stored bot has client id {client_id} (see `chorus bots list`)")
        self.client_id = client_id
