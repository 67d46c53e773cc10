"""Every served feature vector, score and model version to ``predictions.log``, off the request path.

librdkafka keeps its own bounded queue (``queue.buffering.max.messages``) and sends from its own
thread; ``produce`` only enqueues. When the queue is full (broker slow or gone), ``BufferError``
is raised at once: the record is dropped and counted, and scoring never waits. Delivery failures
reported later by the callback are counted too. Monitoring joins these records with late labels
(training-serving skew, prediction drift).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from riskpipe.settings import Settings
from riskpipe.topics import PREDICTIONS_TOPIC

log = logging.getLogger(__name__)


def prediction_record(*, served_at: datetime, event_id: str, account_id: str, event_time: datetime, model_tag: str,
                      score: float, decision: str, degraded: bool, columns: Sequence[str],
                      values: Sequence[float]) -> dict[str, Any]:
    """One ``predictions.log`` record: the format monitoring parses (``monitoring/served.py``), in one place.
    Missing feature values (NaN) are logged as null."""
    return {"served_at": served_at.isoformat(), "event_id": event_id, "account_id": account_id,
            "event_time": event_time.isoformat(), "model_tag": model_tag, "score": float(score),
            "decision": decision, "degraded": degraded,
            "features": {c: None if math.isnan(v) else float(v) for c, v in zip(columns, values, strict=True)}}


class PredictionLogger:
    def __init__(self, bootstrap_servers: str, topic: str = PREDICTIONS_TOPIC, max_queue: int = 20_000,
                 extra_config: dict[str, Any] | None = None):
        from confluent_kafka import Producer

        self.topic = topic
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._lock = threading.Lock()
        config = {"bootstrap.servers": bootstrap_servers, "queue.buffering.max.messages": max_queue,
                  "linger.ms": 20, "message.timeout.ms": 30_000, "partitioner": "murmur2_random",
                  "enable.idempotence": False, "log_level": 3, **(extra_config or {})}
        self._producer = Producer(config)

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLogger:
        return cls(settings.bootstrap_servers, f"{settings.topic_prefix}{PREDICTIONS_TOPIC}",
                   settings.serving_log_queue)

    def _delivered(self, err: Any, _msg: Any) -> None:
        with self._lock:
            if err is None:
                self.sent += 1
            else:
                self.failed += 1

    def log(self, key: str, record: dict[str, Any]) -> bool:
        """Enqueue one record; False (and counted) when the buffer is full. Never blocks."""
        try:
            self._producer.produce(self.topic, json.dumps(record, default=str, separators=(",", ":")).encode(),
                                   key=key.encode(), on_delivery=self._delivered)
        except BufferError:
            with self._lock:
                self.dropped += 1
            return False
        finally:
            self._producer.poll(0)  # serve delivery callbacks; returns immediately
        return True

    def close(self, timeout: float = 5.0) -> int:
        """Flush what is queued (bounded wait); returns how many records were left unsent."""
        return int(self._producer.flush(timeout))
