"""What the monitoring DAG tells the rest of the pipeline: the retraining reason and the ``alerts`` event.

Both are built from ``MonitoringResult.to_dict()`` (what the DAG's first task returns through XCom),
so the DAG holds no logic. The event goes to the Kafka ``alerts`` topic next to ``model.promoted``
(training/notify.py) and the sync DAG's alerts: keyed ``monitoring.alarm``, it names the run, its
alarms and where the reports are, so whoever reads the topic can open them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

EVENT_KIND = "monitoring.alarm"


def retrain_reason(result: Mapping[str, Any], limit: int = 500) -> str:
    """One line for the retraining DAG's ``trigger_reason`` param: which checks crossed which thresholds."""
    parts = [f"{a['check']} {a['metric']}={a['value']:.4g} (threshold {a['threshold']:.4g})"
             for a in result.get("alarms", [])]
    text = f"monitoring {result['run_id']}: " + "; ".join(parts or ["no alarm"])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def alarm_event(result: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON payload: ``kind``/``type`` = monitoring.alarm (``type`` like ``model.promoted`` events)."""
    return {"kind": EVENT_KIND, "type": EVENT_KIND, "run_id": result["run_id"], "started_at": result.get("started_at"),
            "report_dir": result["report_dir"], "should_retrain": result["should_retrain"],
            "alarms": list(result.get("alarms", [])), "reason": retrain_reason(result)}


def alarm_messages(result: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, value) pairs for ``ProduceToTopicOperator``; nothing when the run raised no alarm."""
    if result.get("alarms"):
        yield EVENT_KIND, json.dumps(alarm_event(result), sort_keys=True, default=str)
