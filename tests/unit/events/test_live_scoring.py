"""The payment-gateway side of live traffic: request mapping against the serving contract, failure counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa
import pytest

from events.contracts import Transaction
from events.live_scoring import GatewayScorer, score_request
from events.schemas import to_records
from events.simulator.config import SimulationConfig
from events.simulator.engine import Simulator
from serving.schemas import ScoreRequest


@pytest.fixture(scope="module")
def transactions() -> pa.Table:
    now = datetime.now(UTC)
    sim = Simulator(SimulationConfig(accounts=200, days=1, start=now, fraud_rate=0.2), live_rate=200)
    t0 = int(now.timestamp() * 1_000_000)
    table = sim.step(t0, t0 + int(timedelta(seconds=30) / timedelta(microseconds=1))).tables[Transaction]
    assert table.num_rows > 50
    return table


def test_every_simulated_transaction_maps_to_a_valid_score_request(transactions: pa.Table) -> None:
    for row in to_records(transactions):
        request = ScoreRequest.model_validate(score_request(row))  # extra="forbid": no stray contract field
        assert request.event_id == row["event_id"] and request.amount == row["amount"]
        assert request.event_time is not None and request.event_time.tzinfo is not None


def _gateway(handler: object) -> GatewayScorer:
    return GatewayScorer("http://scoring", client=httpx.Client(base_url="http://scoring",
                                                               transport=httpx.MockTransport(handler)))


def test_each_transaction_is_scored_and_decisions_counted(transactions: pa.Table) -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = httpx.Response(200, content=request.content).json()
        seen.append(body)
        decision = "block" if body["amount"] > 500 else "allow"
        return httpx.Response(200, json={"score": 0.5, "decision": decision, "model_version": "v1", "reasons": []})

    gateway = _gateway(handler)
    gateway({Transaction: transactions})
    assert len(seen) == transactions.num_rows == gateway.counters["scored"]
    amounts = transactions.column("amount").to_pylist()
    assert gateway.counters["decision_block"] == sum(a > 500 for a in amounts)
    assert gateway.last_model == "v1"


def test_failures_are_counted_and_never_raised(transactions: pa.Table) -> None:
    calls = iter([httpx.Response(503, json={"error": "no production model"}),
                  httpx.Response(422, json={"error": "bad"})])

    def handler(request: httpx.Request) -> httpx.Response:
        try:
            return next(calls)
        except StopIteration:
            raise httpx.ConnectError("refused", request=request) from None

    gateway = _gateway(handler)
    gateway({Transaction: transactions.slice(0, 4)})
    assert dict(gateway.counters) == {"score_http_503": 1, "score_http_422": 1, "score_unreachable": 2}


def test_account_history_tells_the_device_and_password_facts_training_uses(transactions: pa.Table) -> None:
    from events.contracts import AccountChange, Login
    from events.live_scoring import AccountHistory

    history = AccountHistory()
    row = to_records(transactions)[0]
    unknown = history.enrich(score_request(row))
    assert "device_first_seen_time" not in unknown and "last_password_change_time" not in unknown

    login = pa.Table.from_pylist([{"account_id": row["account_id"], "device_id": row["device_id"],
                                   "event_time": datetime(2026, 1, 1, tzinfo=UTC)}])
    change = pa.Table.from_pylist([{"account_id": row["account_id"], "change_type": "password",
                                    "event_time": datetime(2026, 1, 2, tzinfo=UTC)},
                                   {"account_id": row["account_id"], "change_type": "email",
                                    "event_time": datetime(2026, 1, 3, tzinfo=UTC)}])
    history.observe({Login: login, AccountChange: change, Transaction: transactions})
    request = ScoreRequest.model_validate(history.enrich(score_request(row)))
    assert request.device_first_seen_time == datetime(2026, 1, 1, tzinfo=UTC)  # the earlier sighting stays
    assert request.last_password_change_time == datetime(2026, 1, 2, tzinfo=UTC)  # email changes do not count
    other = next(r for r in to_records(transactions) if r["account_id"] != row["account_id"])
    seen = ScoreRequest.model_validate(history.enrich(score_request(other)))
    assert seen.device_first_seen_time is not None and seen.device_first_seen_time <= seen.event_time
