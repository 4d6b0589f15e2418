"""Why a bot stopped for good. Each carries a message safe to show an operator."""

from __future__ import annotations


class FatalBotError(Exception):
    """An error that retrying cannot fix: the bot is marked failed and not retried."""


class TokenMismatch(FatalBotError):
    """The token logs in as a different bot than the record says."""


class IdentifyBudgetExceeded(FatalBotError):
    """Another IDENTIFY would come too close to Discord's daily limit (which resets the token)."""
