"""`riskpipe replay` of a CSV with a custom mapping, through the real broker, in event-time order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from events_kafka_helpers import consume, create_topics

from events.contracts import MODEL_BY_TOPIC, FraudLabel, Transaction
from events.decode import decode
from riskpipe import cli

pytestmark = pytest.mark.integration

CSV = """id,when,who,what,how_much,money,dev,addr,where,chan,chargeback
r1,2026-03-01T10:00:03Z,c1,card_payment,10,GBP,d1,1.1.1.1,GB,web,no
r2,2026-03-01T10:00:01Z,c2,p2p_transfer,250,GBP,d2,1.1.1.2,GB,ios,yes
r3,2026-03-01T10:00:02Z,c1,withdrawal,75.5,GBP,d1,1.1.1.1,GB,web,no
"""


def test_replay_csv_to_kafka_with_custom_mapping(broker: str, unique: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    prefix = f"{unique}."
    create_topics(broker, [f"{prefix}{t}" for t in MODEL_BY_TOPIC], partitions=1)
    path = tmp_path / "partner.csv"
    path.write_text(CSV)
    mapping = ["id=event_id", "when=event_time", "who=account_id", "what=txn_type", "how_much=amount",
               "money=currency", "dev=device_id", "addr=ip", "where=country", "chan=channel", "chargeback=label"]
    argv = ["riskpipe", "replay", str(path), *[x for m in mapping for x in ("--map", m)], "--fraud-type",
            "p2p_scam", "--label-delay-hours", "72", "--bootstrap-servers", broker, "--topic-prefix", prefix]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0, capsys.readouterr()

    txns = consume(broker, [f"{prefix}{Transaction.topic}"], f"{unique}-t", 3)
    events = [decode(Transaction, m.value(), key=m.key(), require_key=True) for m in txns]
    assert [e.event_id for e in events] == ["r2", "r3", "r1"]  # event-time order on the partition
    assert events[0].amount == 250.0 and events[0].account_id == "c2"
    labels = consume(broker, [f"{prefix}{FraudLabel.topic}"], f"{unique}-l", 1)
    label = decode(FraudLabel, labels[0].value())
    assert (label.event_id, label.fraud_type, len(labels)) == ("r2", "p2p_scam", 1)
    assert (label.label_time - label.event_time).total_seconds() == 72 * 3600
