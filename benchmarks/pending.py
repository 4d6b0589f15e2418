"""What every benchmark that cannot run yet reports: its plan, and why it is pending."""

from __future__ import annotations

from typing import Any


def pending_result(reason: str, plan: str) -> dict[str, Any]:
    return {"status": "pending", "reason": reason, "plan": plan}


def render_pending(result: dict[str, Any]) -> str:
    return f"**Pending: {result['reason']}.**\n\nPlanned measurement: {result['plan']}"
