"""Why a bot stopped for good. Each carries a message safe to show an operator."""

from __future__ import annotations


class FatalBotError(Exception):
    """An error that retrying cannot fix: the bot is marked failed and not retried."""


class TokenMismatch(FatalBotError):
    """The token logs in as a different bot than the record says."""


class IdentifyBudgetExceeded(FatalBotError):
    """Another IDENTIFY would come too close to Discord's daily limit (which resets the token)."""


class ShardingRequired(Exception):
    """Discord closed an IDENTIFY with 4011: the next client shards (again), as Discord recommends."""

    def __init__(self, shards: int) -> None:
        super().__init__(
            f"Discord requires sharding (close code 4011): the bot is in too many guilds for {shards} "
            "gateway connection(s); connecting again with the shards Discord recommends"
        )


class IdentifyDeferred(Exception):
    """The next IDENTIFY must wait longer than discord.py's handshake allows: the runner drops
    the half-open connection and waits it out without a socket, then starts a fresh client."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next IDENTIFY in {wait:.0f}s")
        self.wait = wait
