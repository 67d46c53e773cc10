"""Faust's own ceiling on this broker: an agent that only takes batches of records (``take_events``).

    python -m benchmarks.faust_noop BOOTSTRAP EXPECTED TOPIC [TOPIC ...]

Run by ``bench_stream`` next to the compute worker, in the same run: it is why stage 1 of the worker
reads ``events.*`` with librdkafka instead of a Faust stream (``streaming/event_source.py``). Prints
one JSON line (records, seconds and CPU seconds from the first batch to the ``EXPECTED``-th record)
and exits.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import faust

from riskpipe.settings import Settings
from streaming.faust_app import faust_broker_url, limit_fetch_wait


def main(argv: list[str]) -> None:
    bootstrap, expected, topics = argv[0], int(argv[1]), argv[2:]
    settings = Settings()
    limit_fetch_wait(settings.stream_fetch_wait_ms)  # the worker's setting: same fetch behaviour
    app = faust.App(f"faust-noop-{os.getpid()}", broker=faust_broker_url(bootstrap), store="memory://",
                    datadir=tempfile.mkdtemp(prefix="faust-noop-"), processing_guarantee="at_least_once",
                    web_enabled=False, consumer_auto_offset_reset="earliest",
                    stream_buffer_maxsize=max(4096, settings.stream_batch_size * 2))
    source = app.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"records": 0}
    started: dict[str, float] = {}

    @app.agent(source)
    async def noop(stream: faust.Stream) -> None:
        async for batch in stream.take_events(settings.stream_batch_size, within=settings.stream_batch_window_s):
            if not started:
                started.update(wall=time.perf_counter(), cpu=time.process_time())
            seen["records"] += len(batch)
            if seen["records"] >= expected:
                seconds, cpu = time.perf_counter() - started["wall"], time.process_time() - started["cpu"]
                print(json.dumps({"records": seen["records"], "seconds": round(seconds, 3),
                                  "records_per_s": round(seen["records"] / seconds),
                                  "records_per_cpu_s": round(seen["records"] / cpu)}), flush=True)
                os._exit(0)

    from faust.worker import Worker

    Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
