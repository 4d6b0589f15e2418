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


class NotSameChannel(MusicError):
    def __init__(self, channel_mention: str) -> None:
        super().__init__(f"I'm playing in {channel_mention}: join it to control the music.")


class NothingPlaying(MusicError):
    def __init__(self) -> None:
        super().__init__("Nothing is playing.")


class NoResults(MusicError):
    def __init__(self, query: str) -> None:
        super().__init__(f"No results for `{query[:80]}`.")


class MissingVoicePermission(MusicError):
    def __init__(self, channel_mention: str, missing: str) -> None:
        super().__init__(f"I can't {missing} in {channel_mention}: ask an admin for the permission.")


class NotAllowed(MusicError):
    """The member lacks the DJ role (or Manage Server) for this action."""
