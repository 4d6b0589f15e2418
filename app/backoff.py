"""Exponential backoff with full jitter (bot supervision, Lavalink reconnects)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, *, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0
        # The process's shared generator unless one is given (tests): a Random of its own is a
        # 2.5 KiB Mersenne Twister state, and every bot keeps several backoffs.
        self._uniform = rng.uniform if rng is not None else random.uniform

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self._attempt)
        self._attempt += 1
        # Never below half the ceiling, so a storm of failing bots still spreads out but never spins.
        return self._uniform(ceiling / 2, ceiling)  # jitter, not cryptography

    def reset(self) -> None:
        self._attempt = 0
