"""A small client of Airflow's REST API (v2): log in, trigger a DAG run, wait for it, list runs.

The demo and the end-to-end test go through Airflow exactly as a person using the UI would
(the run shows up in the UI with its logs), rather than calling the DAGs' functions around it.
Airflow 3 wants a bearer token from ``POST /auth/token``; the local stack's admin password is the
one ``airflow standalone`` generated (``riskpipe status`` prints it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from riskpipe.errors import UsageError
from riskpipe.settings import Settings
from riskpipe.stack.airflow import ADMIN_USER, admin_password

FINISHED = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """Airflow answered, but not as expected (a run failed, a DAG never appeared)."""


class AirflowClient:
    """Authenticated calls against one Airflow API server."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout_s: float = 30.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout_s)
        try:
            response = self.http.post("/auth/token", json={"username": username, "password": password})
        except httpx.HTTPError as exc:
            raise UsageError(f"Airflow is not reachable at {base_url}: start the stack with `riskpipe up`") from exc
        if response.status_code not in (200, 201):
            raise UsageError(f"Airflow login as {username!r} failed ({response.status_code}): {response.text[:200]}")
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowClient:
        """The local stack's Airflow with the generated admin password."""
        password = admin_password(settings)
        if password is None:
            raise UsageError(f"no Airflow password under {settings.airflow_home}: start the stack with `riskpipe up`")
        return cls(settings.airflow_url, ADMIN_USER, password)

    def _idempotent(self, method: str, path: str, attempts: int = 4, **kwargs: Any) -> httpx.Response:
        """A call that is safe to repeat, retried on 5xx: the API server answers 500 now and then while its
        metadata database is busy (sqlite in the local stack, e.g. while the scheduler writes)."""
        for attempt in range(attempts):
            response = self.http.request(method, path, **kwargs)
            if response.status_code < 500 or attempt == attempts - 1:
                return response
            time.sleep(2 ** attempt)
        raise AssertionError("unreachable")  # the loop always returns

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise AirflowError(f"{response.request.method} {response.request.url.path}: "
                               f"{response.status_code} {response.text[:300]}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout_s: float = 240.0) -> None:
        """The dag-processor parses files on its own schedule: wait until the API knows the DAG."""
        deadline = time.monotonic() + timeout_s
        while self.http.get(f"/api/v2/dags/{dag_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise AirflowError(f"DAG {dag_id!r} did not appear within {timeout_s:.0f}s: check `riskpipe logs "
                                   f"airflow` for import errors")
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run now (unpausing the DAG first); returns its run id.

        The run id is chosen here, so the POST is safe to repeat after a 500 whose run may have been created:
        the repeat then answers 409 (that id exists), and the run is ours."""
        self._json(self._idempotent("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}))
        run_id = f"manual__{datetime.now(UTC).isoformat()}_{uuid.uuid4().hex[:8]}"
        response = self._idempotent("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                    json={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}})
        if response.status_code == 409:
            return run_id
        return str(self._json(response)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self._json(self._idempotent("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")))

    def runs(self, dag_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Newest runs first."""
        body = self._json(self._idempotent("GET", f"/api/v2/dags/{dag_id}/dagRuns",
                                           params={"order_by": "-run_after", "limit": limit}))
        return list(body["dag_runs"])

    def wait(self, dag_id: str, run_id: str, timeout_s: float = 600.0, poll_s: float = 3.0,
             on_poll: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the run finished; returns it (state success or failed); AirflowError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.run(dag_id, run_id)
            if on_poll is not None:
                on_poll(run)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise AirflowError(f"{dag_id} run {run_id} still {run['state']} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self._json(self._idempotent("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"))
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
