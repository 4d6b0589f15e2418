"""User-facing music errors: each message is short and shown ephemerally as is."""

from __future__ import annotations


class MusicError(Exception):
    """An expected problem; its message is what the user sees."""


class AudioBackendUnavailable(MusicError):
    def __init__(self) -> None:
        super().__init__("The audio backend is unavailable right now. Please try again in a moment.")


class NotInVoice(MusicError):
    def __init__(self) -> None:
        super().__init__("Join a voice channel first.")


class NothingPlaying(MusicError):
    def __init__(self) -> None:
        super().__init__("Nothing is playing in your voice channel.")


class SettingsUnavailable(MusicError):
    def __init__(self) -> None:
        super().__init__(
            "Settings can't be saved right now (the database is not answering). Please try again shortly."
        )


class NoResults(MusicError):
    def __init__(self, query: str) -> None:
        super().__init__(f"No results for `{query[:80]}`.")


class MissingVoicePermission(MusicError):
    def __init__(self, channel_mention: str, missing: str) -> None:
        super().__init__(f"I can't {missing} in {channel_mention}: ask an admin for the permission.")


class BotNotResponding(MusicError):
    """The bot that must act cannot right now: its worker did not take the forwarded request in
    time, or the bot is losing its lease (docs/SCALING.md, "Forwarding")."""

    def __init__(self) -> None:
        super().__init__("That bot is not responding right now. Please try again in a moment.")


class NotAllowed(MusicError):
    """The member lacks the DJ role (or Manage Server) for this action."""


class AllBotsBusy(MusicError):
    """Every bot of ours in the guild plays in another channel; `invite_url` adds one more."""

    def __init__(self, busy: int, *, invite_name: str | None = None, invite_url: str | None = None) -> None:
        message = f"All {busy} of our music bots here are busy in other voice channels."
        if invite_url:
            message += f" Invite **{invite_name}** to play in yours."
        else:
            message += " No other bot of the network has room right now."
        super().__init__(message)
        self.invite_name = invite_name
        self.invite_url = invite_url
