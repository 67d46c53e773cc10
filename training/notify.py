"""Tell serving that the production model changed: a ``model.promoted`` record on the ``alerts`` topic.

The pointer file (``training.promotion``) is the source of truth; this event is the push so
a running service reloads without polling. It is keyed by ``model.promoted`` (one partition,
so promotions arrive in order) and carries the tag, the previous tag and the pointer path.
Delivery failures raise (``ProduceError``), so the Airflow task fails and is retried rather
than leaving serving on the old model unnoticed.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from events.producer import EventProducer, ProduceError
from riskpipe.settings import Settings
from riskpipe.stack.net import port_open
from riskpipe.topics import ALERTS_TOPIC
from training.promotion import pointer_path

log = logging.getLogger(__name__)

EVENT_TYPE = "model.promoted"


class ModelPromoted(BaseModel):
    """The alert payload serving watches for (JSON on the ``alerts`` topic)."""

    type: Literal["model.promoted"] = EVENT_TYPE
    tag: str
    previous: str | None
    action: str
    reason: str
    pointer: str
    at: datetime


def promoted_event(settings: Settings, entry: dict[str, Any]) -> ModelPromoted:
    return ModelPromoted(tag=entry["tag"], previous=entry.get("previous"), action=entry.get("action", "promote"),
                         reason=entry.get("reason", ""), pointer=str(pointer_path(settings)), at=datetime.now(UTC))


def broker_reachable(bootstrap_servers: str) -> bool:
    """Any bootstrap address accepts TCP: checked first so a missing broker fails fast and quietly
    (librdkafka would otherwise retry and log for the whole timeout)."""
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        if host and port.isdigit() and port_open(host, int(port), timeout=1.0):
            return True
    return False


def publish_promotion(settings: Settings, entry: dict[str, Any], topic: str = ALERTS_TOPIC,
                      timeout: float = 30.0) -> ModelPromoted:
    """Produce the event and wait for the broker's acknowledgement."""
    event = promoted_event(settings, entry)
    if not broker_reachable(settings.bootstrap_servers):
        raise ProduceError(f"no broker answers at {settings.bootstrap_servers}")
    producer = EventProducer(settings.bootstrap_servers, client_id="riskpipe-training")
    producer.produce_raw(topic, json.dumps(event.model_dump(mode="json")).encode(), key=EVENT_TYPE.encode())
    producer.flush(timeout)
    log.info("published model promotion", extra={"topic": topic, "tag": event.tag, "previous": event.previous})
    return event
