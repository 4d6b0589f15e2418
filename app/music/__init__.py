"""Music: Lavalink through wavelink, per-bot nodes and players, the slash-command set."""
