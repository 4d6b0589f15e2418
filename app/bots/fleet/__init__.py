"""The fleet layer: what makes many `chorus serve` processes one fleet (docs/SCALING.md).

`worker` registers this process and heartbeats (the renew deadline), `observer` tells a dead
worker from a live one without trusting clocks, `view` mirrors `workers` and `bot_leases`,
`leases` is what this worker holds, `balancer` computes targets and claims or releases,
`status` publishes this worker's bot statuses, and `coordinator` wires them together. The bots
themselves are reached only through `host.BotHost`, which the manager implements.
"""
