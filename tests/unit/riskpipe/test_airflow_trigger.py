"""Triggering a DAG run survives the API server's transient 500s without starting the run twice."""

from __future__ import annotations

import json

import httpx
import pytest

from riskpipe import airflow_api
from riskpipe.airflow_api import AirflowClient, AirflowError


def _client(answers: list[int], posted: list[dict]) -> AirflowClient:
    """A client whose server answers the run POSTs with ``answers`` in turn (PATCH always succeeds)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return httpx.Response(200, json={})
        body = json.loads(request.content)
        posted.append(body)
        status = answers[len(posted) - 1]
        return httpx.Response(status, json={"dag_run_id": body["dag_run_id"]} if status == 200 else {"detail": "x"})

    client = object.__new__(AirflowClient)  # no login: the transport is the server
    client.http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(handle))
    return client


@pytest.mark.parametrize("answers", [[200], [500, 200], [500, 409]])
def test_a_retried_trigger_returns_the_one_run_it_named(answers: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _s: None)
    posted: list[dict] = []
    run_id = _client(answers, posted).trigger("features_backfill", {"groups": ["ip_hourly"]})
    assert len(posted) == len(answers)
    assert {p["dag_run_id"] for p in posted} == {run_id}  # every attempt named the same run
    assert posted[0]["conf"] == {"groups": ["ip_hourly"]}


def test_a_trigger_that_keeps_failing_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(airflow_api.time, "sleep", lambda _s: None)
    with pytest.raises(AirflowError, match="500"):
        _client([500] * 4, []).trigger("features_backfill")
