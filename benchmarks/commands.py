"""Benchmark 3, commands: the `/play` round trip. Pending until the music commands exist.

To add it, replace `run` with the measurement (the fake Discord sends INTERACTION_CREATE for
`/play` from 50 users spread over 10 bots, the fake Lavalink serves the track; time from the
interaction to the first response the fake receives) and return p50/p95/p99; `targets` then
compares p95 with the goal. Nothing else in the harness changes.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext
from benchmarks.pending import pending_result, render_pending
from benchmarks.targets import Target

NAME = "commands"
TITLE = "Commands: /play round trip"
PLAY_P95_GOAL_MS = 50.0


def run(ctx: BenchContext) -> dict[str, Any]:
    return pending_result(
        "music commands not yet implemented",
        "interaction created → first response received by the fake Discord, 50 concurrent users over "
        "10 bots against the fake Lavalink (a separate process); p50/p95/p99.",
    )


def targets(result: dict[str, Any]) -> list[Target]:
    return [Target(goal=f"/play p95 < {PLAY_P95_GOAL_MS:g} ms against the fakes", measured="-",
                   verdict="pending", note=result.get("reason", ""))]  # fmt: skip


def render(result: dict[str, Any]) -> str:
    return render_pending(result)
