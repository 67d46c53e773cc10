"""The two compute stages without Faust or a broker: records in, feature updates / forwards / dead letters out."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from events.contracts import Login, Transaction
from events.dlq import HEADER_REASON
from events.wire import encode
from riskpipe.settings import Settings
from streaming.compute import Consumed, StreamCompute
from streaming.status import WorkerStatus
from streaming.topology import group_names, plans, rekey_topic, stream_groups
from streaming.updates import FeatureUpdate, decode_updates

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


class RecordingProducer:
    """Stands in for EventProducer: keeps what would have been produced."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[bytes | None, bytes | None, list]]] = defaultdict(list)

    def produce_raw(self, topic: str, value: bytes | None, key: bytes | None = None, headers: list | None = None
                    ) -> None:
        self.sent[topic].append((key, value, headers or []))

    def flush(self, timeout: float = 30.0) -> None:
        return None

    def updates(self, topic: str) -> list[FeatureUpdate]:
        """Every update sent to ``topic``, unpacked, in order."""
        return [u for _, v, _ in self.sent[topic] for u in decode_updates(v)]


def _txn(i: int, minutes: float, account: str = "a1", **extra: object) -> Transaction:
    fields = {"txn_type": "card_payment", "amount": 10.0 + i, "currency": "EUR", "device_id": "d1", "ip": "1.1.1.1",
              "country": "DE", "channel": "web", "payment_method_id": "pm1", **extra}
    return Transaction(event_id=f"e{i}", event_time=T0 + timedelta(minutes=minutes), account_id=account, **fields)


def _records(settings: Settings, events: list, offset: int = 0) -> list[Consumed]:
    return [Consumed(f"{settings.topic_prefix}{e.topic}", 0, offset + i, e.account_id.encode(), encode(e))
            for i, e in enumerate(events)]


def _setup(tmp_path: Path, **overrides: object) -> tuple[Settings, StreamCompute, RecordingProducer]:
    overrides.setdefault("stream_groups", "account_txn_velocity,payment_method_sharing,device_sharing")
    settings = Settings(data_dir=tmp_path, topic_prefix="u.", stream_app_id="app", **overrides)
    producer = RecordingProducer()
    compute = StreamCompute(settings, plans(settings), producer, WorkerStatus("test"), {}, {})  # type: ignore[arg-type]
    return settings, compute, producer


def test_stage_one_emits_account_updates_and_forwards_other_entities(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path)
    compute.process_events(_records(settings, [_txn(1, 0), _txn(2, 1), _txn(3, 2, payment_method_id=None)]))
    updates = producer.updates("u.features.account_txn_velocity")
    assert [(u.entity_key, u.features["txn_count_5m"]) for u in updates] == [("a1", 1), ("a1", 2), ("a1", 3)]
    assert not any(u.correction for u in updates)
    forwarded = producer.sent[rekey_topic(settings)]
    assert [k for k, _, _ in forwarded] == [b"payment_method:pm1"]  # one pack for the batch's partition
    rows = json.loads(forwarded[0][1])["rows"]
    assert [(r[0], r[1], r[3]) for r in rows] == [("payment_method:pm1", "u.events.transactions", "e1"),
                                                  ("payment_method:pm1", "u.events.transactions", "e2")]

    # stage 2 consumes exactly what stage 1 forwarded (packs, re-keyed)
    rekeyed = [Consumed(rekey_topic(settings), 0, i, k, v, tuple(h)) for i, (k, v, h) in enumerate(forwarded)]
    compute.process_rekeyed(rekeyed)
    pm = producer.updates("u.features.payment_method_sharing")
    assert [(u.entity_key, u.features["pm_txn_count_1h"], u.features["pm_amount_sum_24h"]) for u in pm] == [
        ("pm1", 1, 11.0), ("pm1", 2, 23.0)]


def test_bad_records_are_dead_lettered_and_the_batch_goes_on(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path)
    good = _records(settings, [_txn(1, 0)])
    bad = [Consumed("u.events.transactions", 1, 7, b"a1", b"{oops"),
           Consumed("u.events.logins", 1, 8, b"a2", b'{"schema_version": 1}')]
    compute.process_events([bad[0], *good, bad[1]])
    reasons = [dict(h)[HEADER_REASON] for topic in ("dlq.u.events.transactions", "dlq.u.events.logins")
               for _, _, h in producer.sent[topic]]
    assert reasons == [b"bad_json", b"missing_field"]
    assert len(producer.updates("u.features.account_txn_velocity")) == 1
    assert compute.status.counters["rejected"] == 2


def test_late_event_is_dead_lettered_once_and_corrections_follow_out_of_order_events(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path, stream_allowed_lateness_s=600.0,
                                         stream_groups="account_txn_velocity,account_txn_diversity")
    compute.process_events(_records(settings, [_txn(1, 0), _txn(2, 30)]))
    producer.sent.clear()
    # 20 minutes behind the newest event: allowed (lateness 10 min)? no -> late; 5 minutes behind -> applied
    compute.process_events(_records(settings, [_txn(3, 10), _txn(4, 25)], offset=2))
    dlq = producer.sent["dlq.u.events.transactions"]
    assert [json.loads(v)["event_id"] for _, v, _ in dlq] == ["e3"]  # once, though late for two groups
    updates = producer.updates("u.features.account_txn_velocity")
    by_time = {(u.event_time_us, u.correction): u.features["txn_count_1h"] for u in updates}
    t = lambda m: int((T0 + timedelta(minutes=m)).timestamp() * 1_000_000)  # noqa: E731
    assert by_time == {(t(25), False): 2, (t(30), True): 3}  # the point at 30 is re-emitted with e4 counted


def test_redelivered_events_re_emit_without_double_counting(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path)
    batch = _records(settings, [_txn(1, 0), _txn(2, 1)])
    compute.process_events(batch)
    compute.process_events(batch)  # at-least-once: the same records again after a crash
    updates = producer.updates("u.features.account_txn_velocity")
    assert [u.features["txn_count_5m"] for u in updates] == [1, 2, 1, 2]
    assert [u.correction for u in updates] == [False, False, True, True]
    assert compute.status.counters["duplicates"] == 2


def test_logins_reach_device_groups_through_the_rekey_topic(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path)
    logins = [Login(event_id=f"l{i}", event_time=T0 + timedelta(minutes=i), account_id=f"a{i}", success=i != 1,
                    device_id="dev", ip=f"10.0.0.{i}", country="DE", two_fa_used=True, channel="ios")
              for i in range(3)]
    compute.process_events(_records(settings, logins))
    forwarded = producer.sent[rekey_topic(settings)]
    compute.process_rekeyed([Consumed(rekey_topic(settings), 0, i, k, v, tuple(h))
                             for i, (k, v, h) in enumerate(forwarded)])
    last = producer.updates("u.features.device_sharing")[-1]
    assert last.entity_key == "dev"
    assert last.features["device_distinct_accounts_1h"] == 3
    assert last.features["device_failed_login_count_1h"] == 1
    assert last.features["device_distinct_ips_24h"] == 3


def test_stage_two_dead_letters_late_forwarded_events_and_skips_unreadable_packs(tmp_path: Path) -> None:
    settings, compute, producer = _setup(tmp_path, stream_allowed_lateness_s=600.0, stream_groups="device_sharing")
    logins = [Login(event_id=f"l{i}", event_time=T0 + timedelta(minutes=m), account_id=f"a{i}", success=True,
                    device_id="dev", ip="10.0.0.1", country="DE", two_fa_used=True, channel="ios")
              for i, m in enumerate([30, 5])]  # the second is 25 minutes behind the device's newest event
    compute.process_events(_records(settings, logins))
    forwarded = producer.sent[rekey_topic(settings)]
    broken = Consumed(rekey_topic(settings), 0, 99, b"device:dev", b'{"format": 1, "rows": [["device:dev"]]}')
    compute.process_rekeyed([broken, *(Consumed(rekey_topic(settings), 0, i, k, v) for i, (k, v, _) in
                                       enumerate(forwarded))])
    assert [u.event_time_us for u in producer.updates("u.features.device_sharing")] == [
        int((T0 + timedelta(minutes=30)).timestamp() * 1_000_000)]
    (dead,) = producer.sent["dlq.u.events.logins"]
    assert dict(dead[2])[HEADER_REASON] == b"late_event" and dead[0] == b"dev"
    assert json.loads(dead[1])["event_id"] == "l1" and json.loads(dead[1])["device_id"] == "dev"
    assert compute.status.counters["rekey_errors"] == 1 and compute.status.counters["late"] == 1


def test_groups_of_one_entity_and_source_share_a_plan_with_its_own_state_name(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    fused = plans(settings)
    assert sorted(group_names(fused)) == sorted(g.name for g in stream_groups(settings))
    assert len({p.name for p in fused}) == len(fused)  # payment-method and counterparty states never collide
    by_groups = {p.group_names: p for p in fused}
    velocity = next(p for names, p in by_groups.items() if "account_txn_velocity" in names)
    assert {"account_txn_diversity", "account_withdrawals"} <= set(velocity.group_names)
