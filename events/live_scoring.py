"""Live traffic that behaves like a payment gateway: every simulated transaction is scored before it happens.

Producing events to Kafka alone feeds the stream features but leaves the scoring service idle,
so ``predictions.log`` (what monitoring compares against training) stays empty. The gateway
posts each transaction of a tick to ``POST /score`` first, then the tick is produced, so the
features a score sees describe the account *before* this transaction, as in production.

A scoring failure (service down, no model yet: 503) is counted and logged, never fatal: the
payments still happen, exactly as a gateway that fails open would let them through.

The platform knows each account's history, and the scoring request carries two facts of it that
the model uses as on-demand features: when the account first used this device and when it last
changed its password (serving has no lookup for them; without them every device looks new).
``AccountHistory`` keeps them, seeded from the offline store with the same definitions training
uses (``training.dataset``) and updated from every simulated event the gateway sees.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx
import pyarrow as pa

from events.contracts import AccountChange, Event, Login, Transaction
from events.schemas import to_records
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

# Transaction fields the scoring request accepts (serving.schemas.ScoreRequest forbids the others).
REQUEST_FIELDS = ("event_id", "event_time", "account_id", "txn_type", "amount", "currency", "counterparty_id",
                  "payment_method_id", "device_id", "ip", "country")


def score_request(row: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction record (as ``to_records`` gives it) -> the JSON body of ``POST /score``."""
    return {k: row[k] for k in REQUEST_FIELDS if row.get(k) is not None}


_HISTORY_SQL = {
    "devices": """SELECT account_id, device_id, min(event_time) AS first_seen FROM (
                      SELECT account_id, device_id, event_time FROM events_transactions
                      UNION ALL SELECT account_id, device_id, event_time FROM events_logins
                  ) s GROUP BY account_id, device_id""",
    "passwords": """SELECT account_id, max(event_time) AS changed FROM events_account_changes
                    WHERE change_type = 'password' GROUP BY account_id""",
}


class AccountHistory:
    """Per account: first sighting of each device and the last password change (ISO strings, UTC)."""

    def __init__(self) -> None:
        self.device_first_seen: dict[tuple[str, str], str] = {}
        self.password_changed: dict[str, str] = {}

    @classmethod
    def from_offline_store(cls, settings: Settings) -> AccountHistory:
        """Seeded from the raw event tables (what the platform's account database would answer)."""
        from features.offline_access import offline_session

        history = cls()
        with offline_session(settings) as store:
            for account, device, first in store.query(_HISTORY_SQL["devices"]).to_pylist():
                history.device_first_seen[(account, device)] = _iso(first)
            for account, changed in store.query(_HISTORY_SQL["passwords"]).to_pylist():
                history.password_changed[account] = _iso(changed)
        return history

    def observe(self, tables: Mapping[type[Event], pa.Table]) -> None:
        """Learn from a tick's events (records come in time order per table)."""
        for model in (Login, Transaction):
            if model in tables:
                for row in to_records(tables[model].select(["account_id", "device_id", "event_time"])):
                    self.device_first_seen.setdefault((row["account_id"], row["device_id"]), row["event_time"])
        if AccountChange in tables:
            for row in to_records(tables[AccountChange].select(["account_id", "change_type", "event_time"])):
                if row["change_type"] == "password":
                    self.password_changed[row["account_id"]] = row["event_time"]

    def enrich(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request with the account-history fields the platform knows (absent when it knows none)."""
        first = self.device_first_seen.get((body["account_id"], body["device_id"]))
        changed = self.password_changed.get(body["account_id"])
        return {**body, **({"device_first_seen_time": first} if first else {}),
                **({"last_password_change_time": changed} if changed else {})}


def load_history(settings: Settings) -> AccountHistory:
    """The offline store's account history, or an empty one (with a warning) when there is none to read."""
    try:
        return AccountHistory.from_offline_store(settings)
    except Exception as exc:  # no history yet (fresh store, other backend down): scoring still works, less informed
        log.warning("no account history for the gateway: devices count as new until seen live",
                    extra={"error": str(exc), "hint": "run `riskpipe simulate --history` or `riskpipe up` first"})
        return AccountHistory()


def _iso(value: Any) -> str:
    """Offline timestamps are naive UTC: the request wants an explicit zone."""
    return value.replace(tzinfo=None).isoformat() + "Z"


class GatewayScorer:
    """Posts each transaction of a tick to the scoring endpoint; keeps counters for the status line."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 2.0,
                 client: httpx.Client | None = None, history: AccountHistory | None = None) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self.history = history or AccountHistory()
        self.client = client or httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, headers=headers)
        self.counters: Counter[str] = Counter()
        self.last_model: str | None = None

    def __call__(self, tables: Mapping[type[Event], pa.Table]) -> None:
        self.history.observe(tables)  # a transaction is itself a sighting of its device, as in training
        table = tables.get(Transaction)
        if table is None or table.num_rows == 0:
            return
        for row in to_records(table):
            self.score(self.history.enrich(score_request(row)))

    def score(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """One request; returns the response body, or None when scoring failed (counted by reason)."""
        try:
            response = self.client.post("/score", json=body)
        except httpx.HTTPError as exc:
            self.counters["score_unreachable"] += 1
            log.warning("scoring endpoint unreachable; the payment goes through unscored",
                        extra={"error": str(exc), "hint": "is the serving service up? `riskpipe status`"})
            return None
        if response.status_code != 200:
            self.counters[f"score_http_{response.status_code}"] += 1
            if response.status_code != 503:  # 503 = no production model yet: expected until the first promotion
                log.warning("scoring refused a transaction", extra={"status": response.status_code,
                                                                    "body": response.text[:300]})
            return None
        result = response.json()
        self.counters["scored"] += 1
        self.counters[f"decision_{result['decision']}"] += 1
        self.last_model = result.get("model_version")
        return result

    def close(self) -> None:
        self.client.close()
