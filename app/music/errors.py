"""User-facing music errors: each is a catalogue message, shown ephemerally in the reader's language.

`str(error)` is the English text (for logs); `error.render(language)` is what the user sees.
"""

from __future__ import annotations

from typing import Any

from app.i18n import DEFAULT_LANGUAGE, Msg


class MusicError(Exception):
    """An expected problem; its message is what the user sees."""

    def __init__(self, key: str, /, **params: Any) -> None:
        self.msg = Msg(key, **params)
        super().__init__(self.msg.render(DEFAULT_LANGUAGE))

    def render(self, language: str) -> str:
        return self.msg.render(language)


class AudioBackendUnavailable(MusicError):
    def __init__(self) -> None:
        super().__init__("error.backend_unavailable")


class NotInVoice(MusicError):
    def __init__(self) -> None:
        super().__init__("error.not_in_voice")


class NothingPlaying(MusicError):
    def __init__(self) -> None:
        super().__init__("error.nothing_playing")


class PlayerEnded(MusicError):
    """A controller button of a player that has left."""

    def __init__(self) -> None:
        super().__init__("error.player_ended")


class SettingsUnavailable(MusicError):
    def __init__(self) -> None:
        super().__init__("error.settings_unavailable")


class NoResults(MusicError):
    def __init__(self, query: str) -> None:
        super().__init__("error.no_results", query=query[:80])


class MissingVoicePermission(MusicError):
    def __init__(self, channel_mention: str, missing: str) -> None:
        super().__init__(f"error.missing_voice_{missing}", channel=channel_mention)


class BotNotResponding(MusicError):
    """The bot that must act cannot right now: its worker did not take the forwarded request in
    time, or the bot is losing its lease (docs/SCALING.md, "Forwarding")."""

    def __init__(self) -> None:
        super().__init__("error.bot_not_responding")


class NotAllowed(MusicError):
    """The member lacks the DJ role (or Manage Server) for this action."""


class AllBotsBusy(MusicError):
    """Every bot of ours in the guild plays in another channel; `invite_url` adds one more."""

    def __init__(self, busy: int, *, invite_name: str | None = None, invite_url: str | None = None) -> None:
        if invite_url:
            super().__init__("error.all_busy_invite", count=busy, name=invite_name or "")
        else:
            super().__init__("error.all_busy", count=busy)
        self.invite_name = invite_name
        self.invite_url = invite_url
