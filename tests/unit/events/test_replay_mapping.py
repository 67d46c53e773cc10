"""Bring-your-own-data: foreign files mapped onto the contracts, with clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events.contracts import FraudLabel, Login, Transaction
from events.replay import check_errors, make_plan, map_rows, parse_pairs, read_file
from riskpipe.errors import UsageError

CSV = """tx_id,ts,customer,kind,value,ccy,device,ip_addr,cc,is_fraud
9001,2026-02-01 10:00:05,1001,card_payment,12.50,EUR,d-1,10.0.0.1,DE,0
9002,2026-02-01 09:00:00,1002,withdrawal,900,EUR,d-9,10.0.0.9,RU,1
9003,2026-02-01 11:00:00,1001,card_payment,-4,EUR,d-1,10.0.0.1,DE,0
"""
MAPPING = ["tx_id=event_id", "ts=event_time", "customer=account_id", "kind=txn_type", "value=amount",
           "ccy=currency", "device=device_id", "ip_addr=ip", "cc=country", "is_fraud=label"]


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "bank.csv"
    path.write_text(CSV)
    return path


def _plan(path: Path, mapping=MAPPING, sets=("channel=web",), **kw):
    table = read_file(path)
    return table, make_plan(table, parse_pairs(mapping, "--map"), parse_pairs(sets, "--set"), **kw)


def test_csv_with_custom_columns_becomes_sorted_events_and_labels(csv_file: Path) -> None:
    table, plan = _plan(csv_file, label_delay_hours=24, fraud_type="ato")
    assert plan.model is Transaction
    mapped = map_rows(table, plan)
    assert [e.event_id for e in mapped.events] == ["9002", "9001"]  # event-time order, ids as text
    first = mapped.events[0]
    assert first.account_id == "1002" and first.amount == 900.0 and first.channel == "web"
    assert first.event_time == datetime(2026, 2, 1, 9, tzinfo=UTC)  # naive times are UTC
    assert len(mapped.labels) == 1
    label = mapped.labels[0]
    assert isinstance(label, FraudLabel)
    assert (label.event_id, label.fraud_type) == ("9002", "ato")
    assert label.label_time == datetime(2026, 2, 2, 9, tzinfo=UTC)
    assert [(n, r.reason) for n, r in mapped.rejected] == [(3, "bad_amount")]
    with pytest.raises(UsageError, match=r"row 3: bad_amount.*--max-errors"):
        check_errors(mapped, max_errors=0)
    check_errors(mapped, max_errors=1)


def test_jsonl_with_epoch_millis_and_label_columns(tmp_path: Path) -> None:
    path = tmp_path / "logins.jsonl"
    rows = [{"user": "u1", "at": 1767261600000, "ok": "yes", "dev": "x", "addr": "1.2.3.4", "geo": "US",
             "mfa": 1, "app": "ios", "fraud": True, "kind": "p2p_scam", "reported": "2026-01-03T00:00:00Z"},
            {"user": "u2", "at": 1767261700000, "ok": "no", "dev": "y", "addr": "1.2.3.5", "geo": "US",
             "mfa": 0, "app": "web", "fraud": False, "kind": None, "reported": None}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    mapping = ["user=account_id", "at=event_time", "ok=success", "dev=device_id", "addr=ip", "geo=country",
               "mfa=two_fa_used", "app=channel", "fraud=label", "kind=fraud_type", "reported=label_time"]
    table, plan = _plan(path, mapping, sets=())
    assert plan.model is Login
    mapped = map_rows(table, plan)
    assert not mapped.rejected
    assert [e.success for e in mapped.events] == [True, False]
    assert mapped.events[0].event_time == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert mapped.labels[0].fraud_type == "p2p_scam"
    assert mapped.labels[0].label_time == datetime(2026, 1, 3, tzinfo=UTC)
    assert mapped.events[0].event_id != mapped.events[1].event_id  # generated, stable ids


def test_parquet_columns_named_like_the_contract_need_no_mapping(tmp_path: Path) -> None:
    path = tmp_path / "txns.parquet"
    pq.write_table(pa.table({
        "event_id": ["a", "b"],
        "event_time": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC")),
        "account_id": ["x", "y"], "txn_type": ["deposit", "deposit"], "amount": [1.0, 2.0], "currency": ["USD"] * 2,
        "device_id": ["d", "d"], "ip": ["i", "i"], "country": ["US", "US"], "channel": ["api", "api"]}), path)
    table, plan = _plan(path, mapping=[], sets=())
    assert len(map_rows(table, plan).events) == 2


@pytest.mark.parametrize(("mapping", "sets", "kwargs", "message"), [
    (["nope=event_time"], [], {}, r"column\(s\) \['nope'\] not in the file"),
    (MAPPING, [], {}, r"needs \['channel'\]: add --map COLUMN=FIELD or --set FIELD=VALUE"),
    ([*MAPPING, "ts=colour"], ["channel=web"], {}, r"not fields of Transaction"),
    (MAPPING, ["channel=web"], {"event_type": "payment"}, r"--type 'payment'"),
    (MAPPING, ["channel=web"], {"fraud_type": "bad"}, r"--fraud-type 'bad'"),
    (["broken"], [], {}, r"--map 'broken': expected NAME=VALUE"),
])
def test_mapping_errors_are_one_clear_line(csv_file: Path, mapping, sets, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        _plan(csv_file, mapping, sets, **kwargs)


def test_unknown_file_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_file(tmp_path / "missing.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(UsageError, match="unknown format"):
        read_file(tmp_path / "data.xlsx")
