"""Stage 1's time-aligned release of consumed records across partitions (pure: no Kafka)."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.event_source import AlignedBuffer, commit_offsets

A, B, C = ("events.transactions", 0), ("events.transactions", 1), ("events.logins", 0)


@dataclass
class Rec:
    tp: tuple[str, int]
    off: int
    ts: int

    def topic(self) -> str:
        return self.tp[0]

    def partition(self) -> int:
        return self.tp[1]

    def offset(self) -> int:
        return self.off

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts)


def buffer(*partitions: tuple[str, int], idle: float = 1.0, slack: int = 0) -> AlignedBuffer:
    buf = AlignedBuffer(max_idle_s=idle, slack_ms=slack)
    buf.reset(partitions)
    return buf


def stamps(records: list[Rec]) -> list[tuple[tuple[str, int], int]]:
    return [(r.tp, r.ts) for r in records]


def test_released_in_timestamp_order_across_partitions_when_everything_is_read() -> None:
    buf = buffer(A, B)
    buf.add([Rec(A, 0, 10), Rec(A, 1, 30), Rec(B, 0, 20), Rec(B, 1, 40)])
    out = buf.release(100, lambda tp: False, now=0.0)
    assert [r.ts for r in out] == [10, 20, 30, 40]
    assert len(buf) == 0


def test_never_released_past_what_a_partition_with_unread_records_may_hold() -> None:
    # A replay: partition A's fetch covered hours (ts up to 500), B's only up to 100 and B has more on the broker.
    buf = buffer(A, B)
    buf.add([Rec(A, i, ts) for i, ts in enumerate((50, 150, 300, 500))] + [Rec(B, 0, 40), Rec(B, 1, 100)])
    out = buf.release(100, lambda tp: tp == B, now=0.0)
    assert stamps(out) == [(B, 40), (A, 50), (B, 100)]
    buf.add([Rec(B, 2, 400)])
    out = buf.release(100, lambda tp: tp == B, now=0.0)
    assert stamps(out) == [(A, 150), (A, 300), (B, 400)]
    assert len(buf) == 1  # A's 500 waits for B's next fetch


def test_an_empty_partition_with_unread_records_holds_back_until_the_idle_limit() -> None:
    buf = buffer(A, B, idle=0.5)
    buf.add([Rec(A, 0, 10)])
    assert buf.release(100, lambda tp: True, now=1.0) == []
    assert buf.release(100, lambda tp: True, now=1.4) == []
    # B passed over; A may hold more, but nothing earlier than what it already delivered
    assert stamps(buf.release(100, lambda tp: True, now=1.6)) == [(A, 10)]
    buf.add([Rec(B, 0, 5)])  # B's late fetch (older than what went ahead: stage 2 may count it late)
    assert stamps(buf.release(100, lambda tp: False, now=1.7)) == [(B, 5)]


def test_a_caught_up_partition_does_not_hold_anything_back() -> None:
    buf = buffer(A, B, C)
    buf.add([Rec(A, 0, 10), Rec(B, 0, 5)])
    assert stamps(buf.release(100, lambda tp: False, now=0.0)) == [(B, 5), (A, 10)]


def test_limit_releases_a_prefix_of_each_partition_and_commits_after_it() -> None:
    buf = buffer(A, B)
    buf.add([Rec(A, 7, 1), Rec(B, 3, 2), Rec(A, 8, 3), Rec(B, 4, 4)])
    out = buf.release(3, lambda tp: False, now=0.0)
    assert stamps(out) == [(A, 1), (B, 2), (A, 3)]
    assert commit_offsets(out) == {A: 9, B: 4}
    assert stamps(buf.release(3, lambda tp: False, now=0.0)) == [(B, 4)]


def test_timestamps_going_back_within_a_partition_keep_its_offset_order() -> None:
    buf = buffer(A, B)
    buf.add([Rec(A, 0, 30), Rec(A, 1, 10), Rec(B, 0, 20)])
    out = buf.release(100, lambda tp: False, now=0.0)
    assert [(r.tp, r.off) for r in out] == [(B, 0), (A, 0), (A, 1)]


def test_records_of_partitions_no_longer_assigned_are_dropped_and_reset_forgets() -> None:
    buf = buffer(A)
    buf.add([Rec(B, 0, 1), Rec(A, 0, 2)])
    assert len(buf) == 1
    buf.reset([B])
    assert len(buf) == 0
    assert buf.release(10, lambda tp: False, now=0.0) == []


def test_slack_lets_live_partitions_run_ahead_a_little_but_not_a_replay() -> None:
    # live: B's newest is 40 and B has unread records; within the slack of 20 everything up to 60 goes
    buf = buffer(A, B, slack=20)
    buf.add([Rec(A, 0, 10), Rec(A, 1, 55), Rec(A, 2, 90), Rec(B, 0, 40)])
    assert stamps(buf.release(100, lambda tp: True, now=0.0)) == [(A, 10), (B, 40), (A, 55)]
    # B's buffer is empty now, but its newest timestamp still bounds the others: A's 90 waits for B
    assert buf.release(100, lambda tp: True, now=5.0) == []
    buf.add([Rec(B, 1, 75)])
    assert stamps(buf.release(100, lambda tp: True, now=5.0)) == [(B, 75), (A, 90)]
