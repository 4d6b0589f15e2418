"""Moved to `app.backoff` (the music layer needs it too, and may not import the fleet)."""

from __future__ import annotations

from app.backoff import Backoff

__all__ = ("Backoff",)
