"""Redis dies while the ingestion worker is busy: it retries, catches up after the restart, loses nothing.

The test runs its own redis-server (append-only file, fsync always, so the data that Redis
acknowledged survives a SIGKILL like a production Redis with AOF), kills it with SIGKILL in the
middle of a stream of updates, keeps producing, restarts it on the same port and checks that
every update landed: newest-wins values in Redis equal the newest update per entity, and the
offline history holds every (entity, event time) exactly once.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from stream_harness import Workers, wait_status

from events.producer import EventProducer
from features.definitions.catalog import get_group
from features.offline_access import offline_session
from features.online.redis_store import RedisOnlineStore
from riskpipe.settings import Settings
from riskpipe.stack.net import free_port, wait_port
from streaming.topology import ensure_topics, update_topic
from streaming.updates import FeatureUpdate, encode_updates

pytestmark = pytest.mark.integration

GROUP = get_group("device_sharing")
START = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(minutes=30)


class OwnRedis:
    """A redis-server this test may kill (never the session's)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it installs it with apt)")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        assert wait_port("127.0.0.1", self.port, 20), (self.directory / "redis.log").read_text()[-2000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = OwnRedis(directory)
    server.start()
    yield server
    if server.proc is not None:
        server.kill()


def _update(device: int, minute: float, value: int) -> FeatureUpdate:
    t = START + timedelta(minutes=minute)
    features = {"device_distinct_accounts_1h": value, "device_distinct_accounts_24h": value + 1,
                "device_distinct_accounts_7d": value + 2, "device_distinct_accounts_30d": value + 3,
                "device_failed_login_count_1h": value % 3, "device_failed_login_count_24h": value % 5,
                "device_distinct_ips_24h": value % 7}
    return FeatureUpdate(GROUP.name, GROUP.version, "device_id", f"dev{device}",
                         int(t.replace(tzinfo=UTC).timestamp() * 1_000_000), features)


def _produce(settings: Settings, updates: list[FeatureUpdate], per_message: int = 5) -> None:
    with EventProducer(settings.bootstrap_servers) as producer:
        for i in range(0, len(updates), per_message):
            pack = updates[i:i + per_message]
            producer.produce_raw(update_topic(settings, GROUP.name), encode_updates(pack),
                                 key=pack[0].entity_key.encode())


def test_redis_outage_during_ingestion_loses_nothing(stream_settings: Settings, workers: Workers,
                                                     own_redis: OwnRedis) -> None:
    settings = stream_settings.model_copy(update={"stream_groups": GROUP.name, "redis_url": own_redis.url,
                                                  "ingest_flush_s": 0.2})
    workers.settings = settings
    ensure_topics(settings, [update_topic(settings, GROUP.name)])
    # one device per pack, so each device's updates stay on one partition in order (as compute sends them)
    before = [_update(d, m, d * 100 + m) for d in range(6) for m in range(10)]
    during = [_update(d, m, d * 100 + m) for d in range(3, 9) for m in range(10, 20)]
    after = [_update(d, m, d * 100 + m) for d in range(0, 9, 2) for m in range(20, 25)]

    workers.start("ingest")
    _produce(settings, before)
    wait_status(settings, "stream-ingest", lambda s: s["counters"].get("offline", 0) >= len(before), 60, workers)

    own_redis.kill()
    _produce(settings, during)
    retrying = wait_status(settings, "stream-ingest", lambda s: s["state"] == "retrying", 60, workers)
    assert "store write failed" in retrying["detail"] and "onnection" in retrying["detail"], retrying["detail"]
    time.sleep(1.0)  # a few failed attempts while updates keep arriving
    _produce(settings, after)
    own_redis.start()

    everything = before + during + after
    done = wait_status(settings, "stream-ingest",
                       lambda s: s["counters"].get("offline", 0) >= len(everything) and s["state"] == "running",
                       90, workers)
    assert done["counters"]["retries"] >= 1
    assert done["counters"].get("rejected", 0) == 0

    newest: dict[str, FeatureUpdate] = {}
    for u in everything:
        if u.entity_key not in newest or u.event_time_us > newest[u.entity_key].event_time_us:
            newest[u.entity_key] = u
    online = RedisOnlineStore.from_settings(settings).read_many([{"device_id": k} for k in sorted(newest)], [GROUP],
                                                                now=START + timedelta(hours=1))
    got = {k: (v[GROUP.name].event_time.replace(tzinfo=None), v[GROUP.name].values)
           for k, v in zip(sorted(newest), online, strict=True)}
    assert got == {k: (u.event_time, u.features) for k, u in newest.items()}

    with offline_session(settings) as store:
        rows = store.query(f"SELECT device_id, event_time, device_distinct_accounts_1h FROM {GROUP.table_name}"
                           ).to_pylist()
    assert len(rows) == len(everything)  # no duplicates ...
    assert {(r["device_id"], r["event_time"], r["device_distinct_accounts_1h"]) for r in rows} == {
        (u.entity_key, u.event_time, u.features["device_distinct_accounts_1h"]) for u in everything}  # ... none lost
