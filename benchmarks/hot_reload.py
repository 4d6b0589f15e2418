"""Benchmark 4, hot reload: a bot inserted in the database → ready. Pending until it exists.

To add it, replace `run`: with a fleet running, insert a bot record and time until `/bots`
shows it ready (p50/p95 over repeated inserts). Nothing else in the harness changes.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext
from benchmarks.pending import pending_result, render_pending
from benchmarks.targets import Target

NAME = "hot_reload"
TITLE = "Hot reload: a bot inserted in the database → ready"


def run(ctx: BenchContext) -> dict[str, Any]:
    return pending_result(
        "hot reload not yet implemented",
        "a bot record inserted while the fleet runs → that bot ready in `/bots`; p50/p95.",
    )


def targets(result: dict[str, Any]) -> list[Target]:
    return []


def render(result: dict[str, Any]) -> str:
    return render_pending(result)
