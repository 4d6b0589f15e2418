"""`python scripts/deploy_commands.py [CLIENT_ID] [GUILD_ID]`: the same as `chorus deploy-commands`."""

from __future__ import annotations

import sys
from pathlib import Path

# Runnable from a clone without activating the virtualenv's console script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli import cli

if __name__ == "__main__":
    cli(["deploy-commands", *sys.argv[1:]], prog_name="chorus")
