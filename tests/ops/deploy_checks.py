"""What the deployment files (compose, Kubernetes) may set: the service's settings."""

from __future__ import annotations

from app.settings import Settings
from app.shutdown import EXIT_GRACE

# A SIGTERMed worker drains within SHUTDOWN_TIMEOUT (docs/OPERATIONS.md): graceful hand-overs
# start for 15 s at most (DRAIN_HAND_OVER_SECONDS), the rest are closed by the paced stop, and
# the process exits by itself EXIT_GRACE after SHUTDOWN_TIMEOUT whatever still runs. Grace
# periods must not be shorter.
HANDOVER_SECONDS = Settings.model_fields["shutdown_timeout"].default + EXIT_GRACE


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
