"""The Airflow UI page of the plugin: HTML escaping, JSON shape, and a busy store answered with 503."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from plugins import feature_groups_page
from plugins.feature_groups_page import app, render_page

ROW = {"name": "ip_hourly", "version": 2, "registry_version": 1, "schedule": "hourly", "entity": "ip",
       "ttl_s": 7200, "latest_event_time": datetime(2024, 1, 1, 5), "freshness_s": 5400.0, "state": "fresh",
       "last_sync_at": None, "mismatch_rate": 0.0125}


def test_render_page_shows_version_schedule_freshness_and_escapes() -> None:
    page = render_page([ROW, {**ROW, "name": "<script>", "registry_version": None, "state": "empty",
                              "freshness_s": None}])
    assert "<td>ip_hourly</td><td>v2</td><td>v1</td><td>hourly</td>" in page
    assert "<td>1.5h</td><td>2.0h</td><td>fresh</td>" in page and "1.25%" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "not applied" in page


def test_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(app)
    monkeypatch.setattr(feature_groups_page, "load_rows", lambda: [ROW])
    assert client.get("/").status_code == 200
    assert client.get("/groups.json").json()[0]["latest_event_time"] == "2024-01-01T05:00:00"

    def busy() -> list:
        raise RuntimeError("locked")

    monkeypatch.setattr(feature_groups_page, "load_rows", busy)
    resp = client.get("/")
    assert resp.status_code == 503 and "offline store unavailable: locked" in resp.text
