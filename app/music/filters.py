"""Audio filter presets for `/filter`."""

from __future__ import annotations

from collections.abc import Callable

import wavelink


def _bassboost(filters: wavelink.Filters) -> None:
    filters.equalizer.set(
        bands=[{"band": band, "gain": gain} for band, gain in enumerate((0.3, 0.25, 0.2, 0.1, 0.05))]
    )


def _nightcore(filters: wavelink.Filters) -> None:
    filters.timescale.set(speed=1.2, pitch=1.2, rate=1.0)


def _vaporwave(filters: wavelink.Filters) -> None:
    filters.timescale.set(speed=0.85, pitch=0.8, rate=1.0)


def _karaoke(filters: wavelink.Filters) -> None:
    filters.karaoke.set(level=1.0, mono_level=1.0, filter_band=220.0, filter_width=100.0)


def _eight_d(filters: wavelink.Filters) -> None:
    filters.rotation.set(rotation_hz=0.2)


PRESETS: dict[str, Callable[[wavelink.Filters], None]] = {
    "bassboost": _bassboost,
    "nightcore": _nightcore,
    "vaporwave": _vaporwave,
    "karaoke": _karaoke,
    "8d": _eight_d,
    "reset": lambda filters: None,
}


def preset_filters(name: str) -> wavelink.Filters:
    """A fresh filter set for the preset (presets replace each other; `reset` clears all)."""
    filters = wavelink.Filters()
    PRESETS[name](filters)
    return filters
