"""The Prometheus metrics that count events, shared by every layer; the names dashboards rely on.

Counters and histograms of things that *happen* (an interaction answered, an IDENTIFY sent, a
player snapshot written) are incremented where they happen, in whichever layer that is, so they
live here, in the base layer every layer may import. They are created without a registry: each
app's `/metrics` registers them in its own `CollectorRegistry` next to the fleet's gauges,
which are computed at scrape time from memory (`app.bots.telemetry.FleetCollector`), never
updated per event.

Counters are per process by Prometheus's own definition (a restart starts them at zero and
`rate()` handles it), which is why they are process-wide objects rather than per app. Labels
are bounded: a command name (the bot's own command set) and an outcome, never a guild or a user.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import Counter, Histogram

__all__ = (
    "IDENTIFIES",
    "INTERACTIONS",
    "INTERACTION_SECONDS",
    "SNAPSHOT_WRITES",
    "InteractionOutcome",
    "observe_interaction",
)


class InteractionOutcome(StrEnum):
    OK = "ok"
    USER_ERROR = "user_error"  # refused with a reason the user can act on (bad option, not in voice, ...)
    FAILED = "failed"  # a bug or an outage: "something went wrong on my side"
    # The acting bot runs on another worker: handed over there (which counts it with its outcome).
    FORWARDED = "forwarded"


INTERACTIONS = Counter(
    "chorus_interactions",
    "Application commands handled, by command and outcome (ok, user_error, failed, forwarded)",
    ["command", "outcome"],
    registry=None,
)
# Discord allows 3 s for the first answer: the buckets around it matter most.
INTERACTION_SECONDS = Histogram(
    "chorus_interaction_seconds",
    "Seconds from an application command's dispatch to its first answer (message, defer or modal)",
    ["command"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
    registry=None,
)
IDENTIFIES = Counter(
    "chorus_identifies",
    "Gateway IDENTIFYs sent by the bots of this worker (each one spends Discord's daily budget)",
    registry=None,
)
SNAPSHOT_WRITES = Counter(
    "chorus_snapshot_writes",
    "Player snapshot writes sent to the database (whole documents, updates, deletions; only what changed)",
    registry=None,
)

EVENT_METRICS = (INTERACTIONS, INTERACTION_SECONDS, IDENTIFIES, SNAPSHOT_WRITES)


def observe_interaction(
    command: str, outcome: InteractionOutcome, *, dispatched: float, answered: float | None
) -> None:
    """Count one handled command; its latency when it was answered (monotonic seconds)."""
    INTERACTIONS.labels(command=command, outcome=outcome.value).inc()
    if answered is not None:
        INTERACTION_SECONDS.labels(command=command).observe(max(0.0, answered - dispatched))
