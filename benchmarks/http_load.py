"""An HTTP load generator, run as a process of its own so it never shares the server's CPU.

    python -m benchmarks.http_load --url http://127.0.0.1:3000/health --rate 200 --duration 10
    python -m benchmarks.http_load --url http://127.0.0.1:3000/health --saturate --connections 16

`--rate` is open-loop: request i is due at start + i/rate whatever happened to the ones before,
and its latency is counted from when it was *due*, not from when it was sent, so a server (or a
generator) that falls behind shows up in the latency instead of silently lowering the rate
(coordinated omission). `--saturate` is closed-loop: `--connections` workers send back to back;
its latency is per request, and the throughput is the server's (or the generator's) ceiling.
The generator reports its own CPU use so a reader can tell which side was the limit.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

OK = 200


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)  # seconds, due (or sent) -> body read
    service: list[float] = field(default_factory=list)  # seconds, sent -> body read
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    body_bytes: int = 0
    first_error: str | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize_ms(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "p50": round(percentile(ordered, 50) * 1000, 3),
        "p90": round(percentile(ordered, 90) * 1000, 3),
        "p99": round(percentile(ordered, 99) * 1000, 3),
        "p999": round(percentile(ordered, 99.9) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
    }


async def _request(session: aiohttp.ClientSession, url: str, due: float, samples: Samples | None) -> None:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        async with session.get(url) as response:
            body = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        if samples is not None:
            samples.errors += 1
            samples.first_error = samples.first_error or f"{type(exc).__name__}: {exc}"
        return
    done = loop.time()
    if samples is None:
        return
    samples.statuses[status] = samples.statuses.get(status, 0) + 1
    if status != OK:
        samples.errors += 1
        return
    samples.body_bytes = len(body)
    samples.latencies.append(done - due)
    samples.service.append(done - sent)


async def fixed_rate(
    url: str, *, rate: float, duration: float, warmup: float, connections: int, timeout: float
) -> dict[str, Any]:
    samples = Samples()
    connector = aiohttp.TCPConnector(limit=connections)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        loop = asyncio.get_running_loop()
        warmup_count = int(rate * warmup)
        total = warmup_count + int(rate * duration)
        tasks: list[asyncio.Task[None]] = []
        max_lag = 0.0
        start = loop.time() + 0.05
        for index in range(total):
            due = start + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            recorded = samples if index >= warmup_count else None
            tasks.append(asyncio.create_task(_request(session, url, due, recorded)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - (start + warmup_count / rate)
    return {
        "mode": "rate",
        "rate": rate,
        "sent": total - warmup_count,
        "elapsed_s": round(elapsed, 3),
        "throughput": round(len(samples.latencies) / elapsed, 1),
        "max_schedule_lag_ms": round(max_lag * 1000, 3),
        **_result(samples),
    }


async def saturate(
    url: str, *, duration: float, warmup: float, connections: int, timeout: float
) -> dict[str, Any]:
    samples = Samples()
    connector = aiohttp.TCPConnector(limit=connections)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            while True:
                now = loop.time()
                if now >= stop_at:
                    return
                await _request(session, url, now, samples if now >= measure_from else None)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = loop.time() - measure_from
    return {
        "mode": "saturate",
        "connections": connections,
        "sent": len(samples.latencies) + samples.errors,
        "elapsed_s": round(elapsed, 3),
        "throughput": round(len(samples.latencies) / elapsed, 1),
        **_result(samples),
    }


def _result(samples: Samples) -> dict[str, Any]:
    return {
        "completed": len(samples.latencies),
        "errors": samples.errors,
        "first_error": samples.first_error,
        "statuses": {str(k): v for k, v in sorted(samples.statuses.items())},
        "body_bytes": samples.body_bytes,
        "latency_ms": summarize_ms(samples.latencies),
        "service_ms": summarize_ms(samples.service),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="open loop: requests per second")
    mode.add_argument("--saturate", action="store_true", help="closed loop: as fast as it answers")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds sent first and not measured")
    parser.add_argument(
        "--connections", type=int, default=16, help="connection pool size (saturate: workers)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    args = parser.parse_args()
    if not args.url.startswith("http://127.0.0.1:"):
        parser.error("only the local service is a target (http://127.0.0.1:PORT/...)")
    cpu_before, wall_before = time.process_time(), time.monotonic()
    if args.saturate:
        result = asyncio.run(
            saturate(args.url, duration=args.duration, warmup=args.warmup,
                     connections=args.connections, timeout=args.timeout)
        )  # fmt: skip
    else:
        result = asyncio.run(
            fixed_rate(args.url, rate=args.rate, duration=args.duration, warmup=args.warmup,
                       connections=args.connections, timeout=args.timeout)
        )  # fmt: skip
    wall = time.monotonic() - wall_before
    result["url"] = args.url
    result["generator_cpu_share"] = round((time.process_time() - cpu_before) / wall, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
