"""Drain ``predictions.log`` into the offline table ``served_predictions``, so every run sees its window.

Serving logs one JSON record per scored request (``serving/scorer.py``: served_at, event_id,
account_id, event_time, model_tag, score, decision, degraded, features). A monitoring run first
drains what arrived since the last run with its own consumer group (``monitoring_group_id``) and
appends it here; offsets are committed only after the rows are stored (at-least-once), and the
append skips rows whose ``(event_id, served_at)`` is already stored, so a replayed batch adds
nothing. A record without an ``event_id`` gets one derived from its key fields, so it can be
deduplicated too. Feature vectors stay a JSON string column: the model's feature list changes with
the model, the table does not.

The drain stops once every assigned partition's position reached its reported end offset and the
log has been quiet for ``idle_s``. Tansu reports the end as the last batch's base offset + 1 (see
ENVIRONMENT.md), but a fetch returns whole batches, so reaching that offset means the last batch was
read. A slow broker therefore delays the drain instead of cutting it short; if the end offsets never
line up, ``max_idle_s`` of silence ends it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from features.offline.arrow_utils import TS
from features.offline.base import OfflineStore, naive_utc
from riskpipe.settings import Settings
from riskpipe.topics import PREDICTIONS_TOPIC

log = logging.getLogger(__name__)

SERVED_TABLE = "served_predictions"
SERVED_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("served_at", TS), ("event_time", TS), ("account_id", pa.string()),
    ("model_tag", pa.string()), ("score", pa.float64()), ("decision", pa.string()), ("degraded", pa.bool_()),
    ("features", pa.string()), ("entities", pa.string()), ("ingested_at", TS),
])
ENTITY_KEYS = ("account_id", "device_id", "ip", "counterparty_id", "payment_method_id")


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return naive_utc(datetime.fromisoformat(str(value)))


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """One log record as a ``served_predictions`` row; None (logged) for a record that is not usable."""
    try:
        record = json.loads(raw)
        served_at = _time(record["served_at"])
        score = float(record["score"])
        features = record.get("features") or {}
        if not isinstance(features, dict):
            raise TypeError("features is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping an unreadable prediction-log record",
                    extra={"error": str(exc)[:200], "record": raw[:200].decode("utf-8", "replace")})
        return None
    entities = {k: record[k] for k in ENTITY_KEYS if record.get(k) is not None}
    event_id = record.get("event_id") or "auto-" + hashlib.sha1(
        f"{record['served_at']}|{record.get('account_id')}|{score}".encode()).hexdigest()[:20]
    return {"event_id": str(event_id), "served_at": served_at, "event_time": _time(record.get("event_time")),
            "account_id": record.get("account_id"), "model_tag": record.get("model_tag"), "score": score,
            "decision": record.get("decision"), "degraded": bool(record.get("degraded", False)),
            "features": json.dumps(features, sort_keys=True), "entities": json.dumps(entities, sort_keys=True)}


def store_served(store: OfflineStore, rows: list[dict[str, Any]]) -> int:
    """Append rows not stored yet (key: event_id + served_at; first wins in a batch); returns how many were new.

    Existing keys are read for the batch's served_at range only: a batch of live traffic spans seconds.
    """
    store.create_table(SERVED_TABLE, SERVED_SCHEMA)
    if not rows:
        return 0
    times = [r["served_at"] for r in rows]
    stored = store.query(f"SELECT event_id, served_at FROM {SERVED_TABLE} WHERE served_at >= ? AND served_at <= ?",
                         [min(times), max(times)]).to_pylist()
    seen = {(r["event_id"], r["served_at"]) for r in stored}
    new = []
    for row in rows:
        key = (row["event_id"], row["served_at"])
        if key not in seen:
            seen.add(key)
            new.append(row)
    now = naive_utc(datetime.now(UTC))
    return store.append(SERVED_TABLE, pa.Table.from_pylist([{**r, "ingested_at": now} for r in new],
                                                           schema=SERVED_SCHEMA))


def predictions_topic(settings: Settings) -> str:
    return f"{settings.topic_prefix}{PREDICTIONS_TOPIC}"


def _end_offsets(consumer: Any) -> dict[tuple[str, int], int]:
    """The end offset of every assigned partition as the broker reports it now."""
    from confluent_kafka import TopicPartition

    return {(tp.topic, tp.partition): consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                                     timeout=5, cached=False)[1]
            for tp in consumer.assignment()}


def _reached(consumer: Any, targets: dict[tuple[str, int], int]) -> bool:
    """Every assigned partition's position is at (or past) its target offset."""
    from confluent_kafka import TopicPartition

    for tp in consumer.position(consumer.assignment()):
        position = tp.offset
        if position < 0:  # nothing fetched in this session yet: where the group left off
            committed = consumer.committed([TopicPartition(tp.topic, tp.partition)], timeout=5)[0].offset
            position = committed if committed >= 0 else consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=5, cached=False)[0]
        if position < targets.get((tp.topic, tp.partition), 0):
            return False
    return True


def drain_predictions(settings: Settings, *, max_idle_s: float = 15.0, join_timeout_s: float = 30.0,
                      max_records: int = 1_000_000) -> int:
    """Move what was on the prediction log when the drain started into ``served_predictions``; returns rows stored.

    The drain stops at the end offsets it saw once its partitions were assigned, not when the log
    goes quiet: under steady traffic the log never goes quiet. Records logged meanwhile wait for the
    next run (the group's committed offsets keep the place). The offline store is opened once per
    batch and closed at once (DuckDB's single writer is shared).
    """
    from confluent_kafka import Consumer

    from features.offline_access import offline_session

    session = settings.kafka_session_timeout_ms
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.monitoring_group_id,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": session, "heartbeat.interval.ms": max(100, session // 4)})
    consumer.subscribe([predictions_topic(settings)])
    stored = seen = 0
    targets: dict[tuple[str, int], int] | None = None
    snapshots = 1
    try:
        deadline = time.monotonic() + join_timeout_s
        quiet_since: float | None = None
        while seen < max_records:
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            good = [m for m in messages if m.error() is None]
            for m in messages:
                if m.error() is not None:
                    log.warning("prediction-log consumer error", extra={"kafka_error": str(m.error())})
            if good:
                rows = [r for r in (parse_record(m.value()) for m in good) if r is not None]
                with offline_session(settings) as store:
                    stored += store_served(store, rows)
                consumer.commit(asynchronous=False)  # only after the rows are stored
                seen += len(good)
                quiet_since = None
            if not consumer.assignment():
                if time.monotonic() > deadline:
                    log.warning("no partition of the prediction log assigned; nothing drained",
                                extra={"topic": predictions_topic(settings)})
                    break
                continue
            if targets is None:
                targets = _end_offsets(consumer)
            if _reached(consumer, targets):
                if snapshots == 2:
                    break
                # once more: Tansu reports a produce batch's base offset + 1 as the end, so the first
                # snapshot can stop inside the last batch; a second one, taken now, is past it
                targets, snapshots = _end_offsets(consumer), 2
                continue
            if not good:  # assigned, short of the targets, and nothing arrives: a broker problem; give up in time
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= max_idle_s:
                    log.warning("prediction log stopped short of its end offsets; the next run goes on",
                                extra={"targets": {f"{t}/{p}": o for (t, p), o in targets.items()}})
                    break
    finally:
        consumer.close()
    log.info("drained prediction log", extra={"records": seen, "stored": stored})
    return stored


def load_served(store: OfflineStore, start: datetime, end: datetime) -> Any:
    """Served rows with ``start <= served_at < end`` as pandas (``feature_frame`` expands the vectors)."""
    if not store.table_exists(SERVED_TABLE):
        return SERVED_SCHEMA.empty_table().to_pandas()
    return store.query(f"SELECT * FROM {SERVED_TABLE} WHERE served_at >= ? AND served_at < ? ORDER BY served_at",
                       [naive_utc(start), naive_utc(end)]).to_pandas()


def feature_frame(served: Any) -> Any:
    """The logged feature vectors of ``served`` as a float frame (None -> NaN), same index."""
    import pandas as pd

    values = [json.loads(v) for v in served["features"]]
    return pd.DataFrame(values, index=served.index).astype(float)
