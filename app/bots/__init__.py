"""The fleet: one discord.py client per bot, each supervised on its own."""
