"""What the deployment files (compose, Kubernetes) may set: the service's settings."""

from __future__ import annotations

from app.settings import Settings

# A SIGTERMed worker hands its bots over within about 30 s (docs/OPERATIONS.md): each bot's stop
# is bounded (10 s to close its client and music, 10 s for its tasks, 2 s for its IDENTIFY log),
# 64 bots stop at a time, and no graceful hand-over starts after 15 s (DRAIN_HAND_OVER_SECONDS:
# the rest are closed without a save). Grace periods must not be shorter.
HANDOVER_SECONDS = 30


def setting_names() -> set[str]:
    """Every environment variable the settings class reads (aliases included)."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        names.update(str(choice) for choice in choices) if choices else names.add(name.upper())
    return names


def known_settings() -> set[str]:
    """What a deployment file may set: exactly the settings the service reads."""
    return setting_names()
