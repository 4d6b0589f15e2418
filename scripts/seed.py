"""`python scripts/seed.py FILE`: the same as `chorus seed FILE`."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a clone without activating the virtualenv's console script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import cli

if __name__ == "__main__":
    cli(["seed", *sys.argv[1:]], prog_name="chorus")
