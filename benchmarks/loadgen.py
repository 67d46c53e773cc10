"""An open-loop HTTP load generator that runs in its own process, optionally pinned to chosen CPUs.

    python -m benchmarks.loadgen --url http://127.0.0.1:3000/score --bodies bodies.jsonl --rate 300 \
        --duration 10 [--cpus 0] [--warmup 2]   -> one JSON object on stdout

Why a process of its own: on a 2-core box a generator in the server's process (or on its core)
steals the CPU the server needs, and its own event-loop delays show up as server latency. Pinning
the generator to one core (``os.sched_setaffinity``) and the server to the other makes the numbers
mean something. Why not aiohttp: a minimal HTTP/1.1 keep-alive client over asyncio streams (on
uvloop) costs a fraction of aiohttp's CPU per request, so the generator stays far from saturating
its core at 1,000 req/s.

Open loop: request i is due at ``t0 + i / rate`` whether or not earlier ones have answered; its
latency counts from that due time, so a stalled server shows up as latency, never as a silently
slower generator (coordinated omission). Event-loop timers fire with ~1 ms granularity, so a
send can start up to about a millisecond late: that slop is included in every latency (the
numbers err high, never low). Each in-flight request holds one connection; idle
connections are reused, new ones opened when none is idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)


def percentiles(latencies_s: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max in milliseconds (None when nothing succeeded)."""
    if not latencies_s:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies_s)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


def http_request(url: str, body: bytes) -> bytes:
    """A pre-encoded keep-alive POST (encoding is not part of the measurement)."""
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Status code of one response, body consumed (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _CONTENT_LENGTH.search(head)
    if length is not None:
        await reader.readexactly(int(length.group(1)))
    elif _CHUNKED.search(head):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


class Pool:
    """Keep-alive connections to one host; one request per connection at a time."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.opened = 0

    async def send(self, payload: bytes) -> int:
        """One request; a reused connection the server closed meanwhile (keep-alive timeout) is
        retried once on a fresh one, like any HTTP client does, instead of counting as an error."""
        if self.idle:
            reader, writer = self.idle.pop()
            try:
                return await self._exchange(reader, writer, payload)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return await self._exchange(reader, writer, payload)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
        try:
            writer.write(payload)
            status = await _read_response(reader)
        except BaseException:
            writer.close()
            raise
        self.idle.append((reader, writer))
        return status

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[1].close()


async def open_loop(url: str, payloads: list[bytes], rate: float, duration: float,
                    timeout: float) -> dict[str, Any]:
    """Send at ``rate``/s for ``duration`` s; latency from each request's due time."""
    parts = urlsplit(url)
    pool = Pool(parts.hostname or "127.0.0.1", parts.port or 80)
    total = max(1, int(rate * duration))
    latencies: list[float] = []
    errors: dict[str, int] = {}
    clock = time.monotonic  # not loop.time(): uvloop's is libuv's cached millisecond clock

    async def one(i: int, due: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                status = await pool.send(payloads[i % len(payloads)])
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            return
        latencies.append(clock() - due)

    tasks = []
    t0 = clock() + 0.05
    lag = 0.0
    for i in range(total):
        due = t0 + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag = max(lag, -delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = clock() - t0
    pool.close()
    return {"target_rps": rate, "sent": total, "ok": len(latencies), "errors": sum(errors.values()),
            "error_kinds": errors, "achieved_rps": round(len(latencies) / elapsed, 1),
            **percentiles(latencies), "connections_opened": pool.opened,
            "generator_max_send_lag_ms": round(lag * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, type=Path, help="JSON Lines file: one request body per line")
    parser.add_argument("--rate", required=True, type=float, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds at 50 req/s first (not measured)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-request timeout (s)")
    parser.add_argument("--cpus", default="", help="comma-separated CPUs to pin this process to (empty: no pin)")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, just with more overhead per request
        uvloop = None
    payloads = [http_request(args.url, line.encode()) for line in args.bodies.read_text().splitlines() if line]
    if not payloads:
        print("loadgen: --bodies file is empty", file=sys.stderr)
        return 2

    async def run() -> dict[str, Any]:
        if args.warmup > 0:
            await open_loop(args.url, payloads, 50, args.warmup, args.timeout)
        started = time.process_time()
        result = await open_loop(args.url, payloads, args.rate, args.duration, args.timeout)
        result["generator_cpu_s"] = round(time.process_time() - started, 2)
        return result

    result = uvloop.run(run()) if uvloop is not None else asyncio.run(run())
    result["generator_cpus"] = sorted(os.sched_getaffinity(0))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
