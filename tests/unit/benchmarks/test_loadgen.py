"""The serving benchmark's open-loop generator and rate search, against a tiny local HTTP server."""

from __future__ import annotations

import asyncio

from benchmarks.bench_serving import meets_goal, next_rate, overhead
from benchmarks.loadgen import _read_response, http_request, open_loop, percentiles


def test_percentiles_in_ms_and_empty() -> None:
    stats = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats == {"p50_ms": 51.0, "p90_ms": 91.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert percentiles([])["p99_ms"] is None


def test_request_bytes_and_response_parsing() -> None:
    assert http_request("http://127.0.0.1:9/score", b"{}") == (
        b"POST /score HTTP/1.1\r\nHost: 127.0.0.1:9\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")

    async def parse(raw: bytes) -> tuple[int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw + b"NEXT")
        status = await _read_response(reader)
        return status, await reader.read(4)

    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    chunked = b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert asyncio.run(parse(sized)) == (200, b"NEXT")
    assert asyncio.run(parse(chunked)) == (503, b"NEXT")


def test_open_loop_counts_answers_errors_and_reuses_connections() -> None:
    async def scenario() -> dict:
        seen = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal seen
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                seen += 1
                status = b"500 Oops" if seen % 10 == 0 else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\nok")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/score"
        async with server:
            return await open_loop(url, [http_request(url, b'{"a": 1}')], rate=200, duration=0.5, timeout=2)

    result = asyncio.run(scenario())
    assert result["sent"] == 100 and result["ok"] == 90 and result["error_kinds"] == {"500": 10}
    assert result["p99_ms"] is not None and result["connections_opened"] < 100


def test_rate_search_and_goal() -> None:
    assert next_rate(0.0, None) == 50.0 and next_rate(300.0, None) == 600.0
    assert next_rate(300.0, 1000.0) == 650.0 and next_rate(300.0, 310.0) is None
    ok = {"errors": 0, "p99_ms": 20.0, "achieved_rps": 299.0, "target_rps": 300}
    assert meets_goal(ok) and not meets_goal({**ok, "p99_ms": 30.0}) and not meets_goal({**ok, "achieved_rps": 200})
    assert not meets_goal({**ok, "p99_ms": None}) and not meets_goal({**ok, "errors": 1})


def test_overhead_ratio_only_for_rates_both_served_cleanly() -> None:
    def step(rate: int, p50: float, p99: float, errors: int = 0) -> dict:
        return {"target_rps": rate, "p50_ms": p50, "p99_ms": p99, "errors": errors}

    targets = {"bentoml": {"steps": [step(100, 4.0, 10.0), step(300, 9.0, 30.0, errors=3)]},
               "raw_asgi": {"steps": [step(100, 2.0, 4.0), step(300, 3.0, 6.0)]}}
    assert overhead(targets) == {"100": {"p50_ratio": 2.0, "p99_ratio": 2.5}}
