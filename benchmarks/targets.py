"""Performance goals: reported against the measurements, never asserted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["met", "missed", "pending", "not measured"]


@dataclass(frozen=True)
class Target:
    goal: str
    measured: str
    verdict: Verdict
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict(ok: bool | None) -> Verdict:
    if ok is None:
        return "not measured"
    return "met" if ok else "missed"


MIB = 2**20


def mib(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value / MIB:.{digits}f}"


def seconds(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"
