"""Chorus: a fleet of Discord music bots in one process."""

__version__ = "0.1.0"
