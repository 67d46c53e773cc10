"""A serving bug (one feature computed differently online) is caught by the skew check, and only that feature.

Real Redis, real broker, real DuckDB, the real ``Scorer`` and ``PredictionLogger``: the same feature
rows are written to the online store and the offline history (as ingestion does), then the service
scores through an online reader that adds 1 to ``txn_count_1h`` (the "bug"). Monitoring drains the
log, recomputes the features point-in-time offline as of each ``served_at`` and must flag exactly
``txn_count_1h``; ``profile_amount_mean_30d`` (read correctly) must match everywhere, and an account
whose value exists only online counts as "missing offline", not as skew.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import prometheus_client
import pytest

from features.offline import DuckDBOfflineStore
from features.online.redis_store import RedisOnlineStore
from monitoring.run import run_monitoring
from monitoring.served import predictions_topic
from riskpipe.settings import Settings
from serving.metrics import ServingMetrics
from serving.online_features import OnlineLookup
from serving.runtime import ServingRuntime
from serving.schemas import ScoreRequest
from serving.testing import DEVICE, PROFILE, VELOCITY, promote_tiny_model
from streaming.topology import ensure_topics

pytestmark = pytest.mark.integration

BUGGY = "txn_count_1h"


class OffByOneReader:
    """The bug under test: wraps the real online reader and serves ``txn_count_1h + 1``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def fetch(self, entities: Sequence[Mapping[str, Any]], now: datetime) -> list[OnlineLookup]:
        out = []
        for lookup in self.inner.fetch(entities, now):
            value = lookup.values.get(BUGGY)
            values = {**lookup.values, BUGGY: None if value is None else value + 1}
            out.append(dataclasses.replace(lookup, values=values))
        return out


def _seed(settings: Settings, accounts: list[str], online_only: str) -> None:
    rng = np.random.default_rng(3)
    at = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=30)
    velocity = pd.DataFrame({"account_id": accounts, "event_time": at,
                             "txn_count_1h": rng.integers(0, 9, len(accounts))})
    profile = pd.DataFrame({"account_id": accounts, "event_time": at,
                            "profile_amount_mean_30d": rng.lognormal(4, 0.5, len(accounts))})
    device = pd.DataFrame({"device_id": [f"{a}-dev" for a in accounts], "event_time": at,
                           "device_distinct_accounts_24h": 1})
    online = RedisOnlineStore.from_settings(settings)
    store = DuckDBOfflineStore(settings.duckdb_path)
    try:
        for group, frame in ((VELOCITY, velocity), (PROFILE, profile), (DEVICE, device)):
            online.write_batch(group, frame)
            store.append_features(group, frame[frame.iloc[:, 0] != online_only] if group is VELOCITY else frame)
    finally:
        store.close()


def test_skew_check_flags_exactly_the_feature_served_wrong(tmp_path, redis_url: str, broker: str, unique: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "rp", redis_url=redis_url, kafka_bootstrap_servers=broker,
                        online_key_prefix=unique, topic_prefix=f"{unique}.", monitoring_group_id=unique,
                        kafka_session_timeout_ms=2000)
    ensure_topics(settings, [predictions_topic(settings)])
    accounts = [f"acct-{i}" for i in range(40)]
    _seed(settings, accounts, online_only=accounts[0])
    promote_tiny_model(settings)
    runtime = ServingRuntime.from_settings(settings, metrics=ServingMetrics(prometheus_client.CollectorRegistry()))
    runtime.scorer.features = OffByOneReader(runtime.scorer.features)
    runtime.scorer.models.refresh()
    requests = [ScoreRequest(account_id=a, txn_type="withdrawal", amount=120.0 + i, currency="USD",
                             device_id=f"{a}-dev", ip="10.0.0.1", country="DE", event_id=f"{a}-e1")
                for i, a in enumerate(accounts)]
    _, responses = runtime.scorer.score_batch(requests)
    assert not any(r.degraded for r in responses)
    runtime.close()  # flushes the prediction log

    result = run_monitoring(settings)

    skew = result.summary["skew"]
    assert result.summary["served_rows"] == len(accounts) and skew["sampled"] == len(accounts)
    assert skew["skewed_features"] == [BUGGY]
    buggy, good = skew["per_feature"][BUGGY], skew["per_feature"]["profile_amount_mean_30d"]
    assert buggy["compared"] == len(accounts) - 1 and buggy["mismatch_rate"] == 1.0
    assert buggy["mean_abs_diff"] == pytest.approx(1.0)
    assert buggy["missing_offline"] == 1  # online-only value: offline lag, not skew
    assert good["compared"] == len(accounts) and good["mismatches"] == 0
    assert "device_distinct_accounts_24h" in skew["not_checked"]  # the log carries no device_id
    assert [(a.check, a.metric) for a in result.alarms] == [("skew", f"mismatch_rate:{BUGGY}")]
    assert result.should_retrain
    assert (result.report_dir / "skew.png").stat().st_size > 0

    # `riskpipe monitor run` prints the same finding, with the report path, and exits 0 (an alarm is a finding)
    from typer.testing import CliRunner

    from riskpipe.cli import app
    from riskpipe.settings import get_settings

    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["monitor", "run", "--window-hours", "1"])
        bad = CliRunner().invoke(app, ["monitor", "run", "--window-hours", "-1"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    assert f"ALARM skew: {BUGGY}" in out.output and "retrain: yes" in out.output
    assert "served rows 40 (drained 0)" in out.output  # nothing new on the log: nothing stored twice
    assert bad.exit_code != 0 and "--window-hours must be positive" in str(bad.exception or bad.output)
