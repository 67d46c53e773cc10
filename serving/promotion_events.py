"""Reload the model as soon as training announces a promotion (``model.promoted`` on the alerts topic).

Polling the production pointer (``serving.model_holder``) stays on as the fallback: this listener
only makes the switch immediate. Every replica must see every event, so there is no consumer
group: the listener assigns itself the topic's partitions at their end offset (no JoinGroup, which
Tansu holds for seconds, and no shared group that two replicas stopping together could wedge).
The event is a trigger, not the truth: on one, the holder re-reads the pointer, so a replayed or
stale event (Tansu's end offset can point a little before the real end) costs a pointer read only.

When no broker answers, the listener retries every ``retry_s`` quietly and polling carries on;
the alerts topic also carries other alerts (sync, drift), which are ignored.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from riskpipe.settings import Settings
from riskpipe.topics import ALERTS_TOPIC
from training.notify import EVENT_TYPE, broker_reachable

log = logging.getLogger(__name__)


def is_promotion(value: bytes | None) -> bool:
    """True for a ``model.promoted`` record; anything else on the topic (or unparsable) is not one."""
    if not value:
        return False
    try:
        record = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and record.get("type") == EVENT_TYPE


class PromotionListener:
    def __init__(self, bootstrap_servers: str, topic: str, on_promoted: Callable[[], Any], retry_s: float = 5.0):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.on_promoted = on_promoted
        self.retry_s = retry_s
        self.events = 0
        self.ready = threading.Event()  # set once assigned: events from then on trigger a reload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, on_promoted: Callable[[], Any]) -> PromotionListener:
        return cls(settings.bootstrap_servers, f"{settings.topic_prefix}{ALERTS_TOPIC}", on_promoted)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promotion-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            if not broker_reachable(self.bootstrap_servers):
                if not warned:
                    log.warning("no broker for model.promoted events; relying on polling the production pointer",
                                extra={"bootstrap_servers": self.bootstrap_servers, "retry_s": self.retry_s})
                    warned = True
                self._stop.wait(self.retry_s)
                continue
            try:
                self._consume()
            except Exception as exc:  # the broker went away mid-way: polling covers, try again later
                log.warning("model.promoted listener failed; retrying (polling continues)",
                            extra={"topic": self.topic, "error": str(exc)[:200]})
            self.ready.clear()
            self._stop.wait(self.retry_s)

    def _consume(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap_servers, "enable.auto.commit": False,
                             "group.id": f"riskpipe-serving-{uuid.uuid4().hex[:12]}",  # never joined (assign)
                             "log_level": 3})
        try:
            topic = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                log.info("alerts topic not there yet; will look again", extra={"topic": self.topic})
                return
            assignment = []
            for partition in sorted(topic.partitions):
                _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=5)
                assignment.append(TopicPartition(self.topic, partition, high))
            consumer.assign(assignment)
            self.ready.set()
            log.info("listening for model.promoted", extra={"topic": self.topic, "partitions": len(assignment)})
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                if is_promotion(msg.value()):
                    self.events += 1
                    self.on_promoted()
        finally:
            consumer.close()
