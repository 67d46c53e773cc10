"""Redis online store on a real redis-server: typed round trips, newest-wins, TTL, one round trip."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import redis

from features.online import RedisOnlineStore
from features.testing import stub_group
from riskpipe.errors import UsageError

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TXN = stub_group(
    "txn", "account_id", timedelta(hours=1), amount="float64", count="int64", country="string", new_device="bool"
)
DEV = stub_group("dev", "device_id", timedelta(0), accounts="int64")


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def store(client: redis.Redis, unique: str) -> RedisOnlineStore:
    # A grace far in the future keeps keys alive: these tests use fixed (past) event times.
    return RedisOnlineStore(client, prefix=unique, expiry_grace=timedelta(days=3650))


def _rows(**cols: list) -> pa.Table:
    return pa.table(cols)


def test_round_trip_keeps_types_and_reports_missing(store: RedisOnlineStore) -> None:
    store.write_batch(
        TXN,
        _rows(
            account_id=["a", "b"],
            event_time=[NOW, NOW],
            amount=[12.25, float("nan")],
            count=[3, None],
            country=["DE", "ÅLAND"],
            new_device=[True, False],
        ),
    )
    vec = store.read({"account_id": "a", "device_id": "d1"}, [TXN, DEV], now=NOW)
    assert vec["txn"].status == "ok" and vec["txn"].event_time == NOW
    assert vec["txn"].values == {"amount": 12.25, "count": 3, "country": "DE", "new_device": True}
    assert type(vec["txn"].values["count"]) is int
    assert vec["dev"].status == "missing" and vec["dev"].event_time is None and vec["dev"].values == {"accounts": None}

    b = store.read({"account_id": "b"}, [TXN], now=NOW)["txn"]
    assert b.values == {"amount": None, "count": None, "country": "ÅLAND", "new_device": False}


def test_older_update_never_overwrites_newer(store: RedisOnlineStore) -> None:
    assert store.write_batch(TXN, _rows(account_id=["a"], event_time=[NOW], count=[10])) == 1
    assert store.write_batch(TXN, _rows(account_id=["a"], event_time=[NOW - timedelta(seconds=1)], count=[99])) == 0
    assert store.write_batch(TXN, _rows(account_id=["a"], event_time=[NOW], count=[10])) == 1  # replay: same values
    got = store.read({"account_id": "a"}, [TXN], now=NOW)["txn"]
    assert got.values["count"] == 10 and got.event_time == NOW

    newer = NOW + timedelta(minutes=1)
    assert store.write_batch(TXN, _rows(account_id=["a"], event_time=[newer], count=[11])) == 1
    assert store.read({"account_id": "a"}, [TXN], now=newer)["txn"].values["count"] == 11


def test_within_one_batch_out_of_order_rows_keep_the_newest(store: RedisOnlineStore) -> None:
    times = [NOW + timedelta(seconds=s) for s in (5, 1, 9, 3)]
    store.write_batch(TXN, _rows(account_id=["a"] * 4, event_time=times, count=[5, 1, 9, 3]))
    got = store.read({"account_id": "a"}, [TXN], now=NOW + timedelta(seconds=10))["txn"]
    assert got.values["count"] == 9 and got.event_time == times[2]


def test_concurrent_writers_converge_on_the_newest_event(client: redis.Redis, unique: str) -> None:
    updates = [(f"k{i % 7}", i) for i in range(1400)]
    stores = [
        RedisOnlineStore(
            redis.Redis(connection_pool=client.connection_pool), prefix=unique, expiry_grace=timedelta(days=3650)
        )
        for _ in range(3)
    ]

    def writer(store: RedisOnlineStore, seed: int) -> None:
        shuffled = random.Random(seed).sample(updates, len(updates))
        for lo in range(0, len(shuffled), 50):
            chunk = shuffled[lo : lo + 50]
            store.write_batch(
                TXN,
                _rows(
                    account_id=[k for k, _ in chunk],
                    event_time=[NOW + timedelta(seconds=s) for _, s in chunk],
                    count=[s for _, s in chunk],
                ),
            )

    threads = [threading.Thread(target=writer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now = NOW + timedelta(seconds=1400)
    vectors = stores[0].read_many([{"account_id": f"k{j}"} for j in range(7)], [TXN], now=now)
    for j, vec in enumerate(vectors):
        newest = max(s for k, s in updates if k == f"k{j}")
        assert vec["txn"].values["count"] == newest


def test_ttl_is_enforced_on_read_and_reports_the_event_time(store: RedisOnlineStore) -> None:
    store.write_batch(TXN, _rows(account_id=["a"], event_time=[NOW], count=[1]))
    at_edge = store.read({"account_id": "a"}, [TXN], now=NOW + timedelta(hours=1))["txn"]
    assert at_edge.status == "ok" and at_edge.values["count"] == 1
    late = store.read({"account_id": "a"}, [TXN], now=NOW + timedelta(hours=1, microseconds=1))["txn"]
    assert late.status == "expired" and late.event_time == NOW and late.values["count"] is None


def test_redis_key_expiry_is_event_time_plus_ttl_plus_grace(client: redis.Redis, unique: str) -> None:
    store = RedisOnlineStore(client, prefix=unique, expiry_grace=timedelta(minutes=5))
    future = datetime.now(UTC) + timedelta(days=1)  # so the key is not already past its expiry
    store.write_batch(TXN, _rows(account_id=["a"], event_time=[future], count=[1]))
    store.write_batch(DEV, _rows(device_id=["d"], event_time=[future], accounts=[1]))
    expected_ms = int((future + timedelta(hours=1, minutes=5)).timestamp() * 1000)
    assert abs(client.pexpiretime(store.key(TXN, "a")) - expected_ms) <= 1
    assert client.pexpiretime(store.key(DEV, "d")) == -1  # no TTL on the group: no expiry


def test_long_expired_writes_are_collected_immediately(client: redis.Redis, unique: str) -> None:
    store = RedisOnlineStore(client, prefix=unique, expiry_grace=timedelta(0))
    store.write_batch(TXN, _rows(account_id=["a"], event_time=[datetime(2020, 1, 1, tzinfo=UTC)], count=[1]))
    assert client.exists(store.key(TXN, "a")) == 0


def test_null_feature_clears_the_field_and_absent_feature_keeps_it(store: RedisOnlineStore) -> None:
    store.write_batch(TXN, _rows(account_id=["a"], event_time=[NOW], count=[1], amount=[2.0]))
    later = NOW + timedelta(seconds=1)
    cleared = pa.table({"account_id": ["a"], "event_time": [later], "count": pa.array([None], pa.int64())})
    store.write_batch(TXN, cleared)
    got = store.read({"account_id": "a"}, [TXN], now=later)["txn"]
    assert got.values["count"] is None and got.values["amount"] == 2.0


def _counting(executes: list[int]) -> type[redis.Redis]:
    """A client class that records how many commands each pipeline execute sends (one entry per round trip)."""

    class CountingRedis(redis.Redis):
        def pipeline(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            pipe = super().pipeline(*args, **kwargs)
            original = pipe.execute
            pipe.execute = lambda *a, **k: (executes.append(len(pipe.command_stack)), original(*a, **k))[1]
            return pipe

    return CountingRedis


def test_full_vector_is_one_round_trip_and_batch_read_keeps_order(client: redis.Redis, unique: str) -> None:
    executes: list[int] = []

    class ReadSpy(_counting(executes)):  # type: ignore[misc]
        def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
            raise AssertionError(f"a read must not send single commands: {args[0]}")

    spy = RedisOnlineStore(ReadSpy(connection_pool=client.connection_pool), prefix=unique)
    writer = RedisOnlineStore(client, prefix=unique, expiry_grace=timedelta(days=3650))
    writer.write_batch(TXN, _rows(account_id=["a", "b"], event_time=[NOW, NOW], count=[1, 2]))
    writer.write_batch(DEV, _rows(device_id=["d2"], event_time=[NOW], accounts=[5]))

    vec = spy.read({"account_id": "a", "device_id": "d2"}, [TXN, DEV], now=NOW)
    assert executes == [2]  # two HMGETs, one execute
    assert (vec["txn"].values["count"], vec["dev"].values["accounts"]) == (1, 5)

    many = spy.read_many([{"account_id": k, "device_id": "d2"} for k in ["b", "zz", "a"]], [TXN, DEV], now=NOW)
    assert executes == [2, 6]
    assert [v["txn"].values["count"] for v in many] == [2, None, 1]
    assert [v["txn"].status for v in many] == ["ok", "missing", "ok"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"event_time": [NOW]}), "no 'account_id' column"),
        (pa.table({"account_id": ["a"]}), "no 'event_time' column"),
        (pa.table({"account_id": ["a"], "event_time": [NOW], "bogus": [1]}), "unknown column"),
        (pa.table({"account_id": ["a"], "event_time": [NOW], "count": ["many"]}), "column 'count'"),
        (pa.table({"account_id": [None], "event_time": [NOW]}), "must not be null"),
        (pa.table({"account_id": ["a"], "event_time": ["yesterday"]}), "must be a timestamp"),
    ],
)
def test_bad_batches_are_usage_errors(store: RedisOnlineStore, table: pa.Table, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        store.write_batch(TXN, table)


def test_read_without_the_entity_key_names_it(store: RedisOnlineStore) -> None:
    with pytest.raises(UsageError, match="'device_id'"):
        store.read({"account_id": "a"}, [TXN, DEV])


def test_from_settings_uses_prefix_and_dsn(settings, redis_url: str, unique: str) -> None:
    configured = settings.model_copy(update={"redis_url": redis_url, "online_key_prefix": unique})
    store = RedisOnlineStore.from_settings(configured)
    store.write_batch(DEV, _rows(device_id=["d"], event_time=[NOW], accounts=[3]))
    assert store.key(DEV, "d") == f"{unique}:fv:dev:v1:d"
    assert store.read({"device_id": "d"}, [DEV], now=NOW)["dev"].values == {"accounts": 3}


def test_large_batch_crossing_script_and_pipeline_chunks_is_fully_applied(store: RedisOnlineStore) -> None:
    n = 10_000 + 2 * 250 + 7  # past one pipeline of 40 script calls, ending in a partial chunk
    keys = [f"k{i}" for i in range(n)]
    assert store.write_batch(TXN, _rows(account_id=keys, event_time=[NOW] * n, count=list(range(n)))) == n
    picks = [0, 249, 250, 9_999, 10_000, n - 1]
    vectors = store.read_many([{"account_id": keys[i]} for i in picks], [TXN], now=NOW)
    assert [v["txn"].values["count"] for v in vectors] == picks


def test_several_groups_are_one_round_trip_and_all_are_checked_before_any_is_sent(
    client: redis.Redis, unique: str
) -> None:
    executes: list[int] = []
    store = RedisOnlineStore(
        _counting(executes)(connection_pool=client.connection_pool), prefix=unique,
        expiry_grace=timedelta(days=3650),
    )
    txn = _rows(account_id=["a", "b"], event_time=[NOW, NOW], count=[1, 2])
    assert store.write_batches([(TXN, txn), (DEV, _rows(device_id=["d"], event_time=[NOW], accounts=[5]))]) == 3
    assert executes == [2]  # one script call per group, one execute
    vec = store.read({"account_id": "b", "device_id": "d"}, [TXN, DEV], now=NOW)
    assert (vec["txn"].values["count"], vec["dev"].values["accounts"]) == (2, 5)

    later = NOW + timedelta(seconds=1)
    with pytest.raises(UsageError, match="unknown column"):
        store.write_batches([(TXN, _rows(account_id=["a"], event_time=[later], count=[9])),
                             (DEV, _rows(device_id=["d"], event_time=[later], bogus=[1]))])
    assert store.read({"account_id": "a"}, [TXN], now=later)["txn"].values["count"] == 1  # nothing was sent
