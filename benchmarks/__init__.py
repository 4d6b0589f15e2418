"""Benchmarks of Chorus: `python -m benchmarks.run` (or `make bench`) writes docs/PERFORMANCE.md.

Every measured process runs on its own: the fake Discord, the database, the load generator and
the baseline bots are separate processes, so they never share the measured process's CPU time
or memory.
"""
