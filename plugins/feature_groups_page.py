"""The "Feature groups" page of the Airflow UI: a FastAPI sub-app mounted by the riskpipe plugin.

``GET /`` renders an HTML table (version, registry version, schedule, freshness, last sync);
``GET /groups.json`` returns the same rows for scripts. The store is opened per request with
a short lock wait: in the embedded mode DuckDB has one writer, and a page must not block a
running task, so a busy store shows a message instead.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

PAGE_LOCK_WAIT_S = 2.0


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render_page(rows: Sequence[dict[str, Any]], error: str | None = None) -> str:
    """The HTML page; every value is escaped (group names come from code, but still)."""
    head = ("<tr><th>group</th><th>version</th><th>registry</th><th>schedule</th><th>entity</th>"
            "<th>newest event</th><th>freshness</th><th>TTL</th><th>state</th><th>last sync</th>"
            "<th>mismatch</th></tr>")
    body = []
    for r in rows:
        cells = [r["name"], f"v{r['version']}",
                 f"v{r['registry_version']}" if r.get("registry_version") else "not applied",
                 r["schedule"], r["entity"], r.get("latest_event_time") or "-", _fmt_age(r.get("freshness_s")),
                 _fmt_age(r.get("ttl_s")), r["state"], r.get("last_sync_at") or "-",
                 "-" if r.get("mismatch_rate") is None else f"{100 * r['mismatch_rate']:.2f}%"]
        body.append(f"<tr class='{html.escape(str(r['state']))}'>"
                    + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    note = f"<p class='error'>{html.escape(error)}</p>" if error else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>riskpipe feature groups</title>"
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.stale{background:#fde2e2}"
            ".empty{color:#888}.error{color:#b00}</style></head><body><h2>Feature groups</h2>"
            f"{note}<table>{head}{''.join(body)}</table></body></html>")


def load_rows() -> list[dict[str, Any]]:
    """Status rows from the configured offline store (opened and closed per request)."""
    from features.group_status import group_status
    from features.offline_access import offline_session
    from riskpipe.settings import get_settings

    with offline_session(get_settings(), wait_s=PAGE_LOCK_WAIT_S) as store:
        return group_status(store)


def _rows_or_error() -> tuple[list[dict[str, Any]], str | None]:
    try:
        return load_rows(), None
    except Exception as exc:  # a busy or unreachable store must not 500 the page
        return [], f"offline store unavailable: {exc}"


app = FastAPI(title="riskpipe feature groups")


@app.get("/", response_class=HTMLResponse)
def feature_groups_html() -> HTMLResponse:
    rows, error = _rows_or_error()
    return HTMLResponse(render_page(rows, error), status_code=200 if error is None else 503)


@app.get("/groups.json")
def feature_groups_json() -> JSONResponse:
    rows, error = _rows_or_error()
    if error is not None:
        return JSONResponse({"error": error}, status_code=503)
    return JSONResponse([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows])
