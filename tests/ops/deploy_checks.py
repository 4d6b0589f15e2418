"""What the deployment files (compose, Kubernetes) may set: the service's settings."""

from __future__ import annotations

import re

from app.settings import Settings
from tests.ops.conftest import ROOT

# A SIGTERMed worker hands its bots over within about 30 s (docs/OPERATIONS.md): each bot's stop
# is bounded (10 s to close its client and music, 10 s for its tasks, 2 s for its IDENTIFY log)
# and the bots stop together, then the leases are released. Grace periods must not be shorter.
HANDOVER_SECONDS = 30


def setting_names() -> set[str]:
    """Every environment variable the settings class reads (aliases included)."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        names.update(str(choice) for choice in choices) if choices else names.add(name.upper())
    return names


def fleet_design_settings() -> set[str]:
    """The settings of the multi-worker fleet as docs/SCALING.md designs them (`LEASE_TTL`,
    `WORKER_CAPACITY`, `WORKER_ADDRESS`): the deployment files are written for that design, and
    the branch that builds it adds them to the settings class."""
    text = (ROOT / "docs" / "SCALING.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))


def known_settings() -> set[str]:
    return setting_names() | fleet_design_settings()
