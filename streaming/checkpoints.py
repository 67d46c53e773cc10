"""When a compute stage writes its states and releases the input behind them (pure: no Faust, no Kafka).

A checkpoint that writes every changed entity at once stalls the stage: at 5k events/s a stage-1
checkpoint encoded ~4k account states in 100-400 ms, once a second, and every event that arrived
meanwhile waited (the freshness p99 showed it). Instead each batch writes the entities *first*
changed by batches that began ``interval_s`` ago or earlier, so the work is spread evenly over the
batches and an entity is still written at most about once per interval however often it is touched.

The input of a batch (its offsets in stage 1, its held re-key records in stage 2) is *released*
only once no entity it changed is still unwritten: ``StateTable.oldest_dirty`` is the earliest batch
with an unwritten change, so every batch before it is fully in the changelog. A crash re-reads what
was not released; re-applied events are recognised by their ids (``streaming.window_state``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from streaming.state_table import StateTable

T = TypeVar("T")


class Checkpoints(Generic[T]):
    """The open batches of one stage, each with what releases its input (``T``: offsets, held records)."""

    def __init__(self, states: StateTable, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.states = states
        self.interval_s = interval_s
        self.clock = clock
        self._open: deque[tuple[int, float, T]] = deque()  # (batch number, began at, input), oldest first
        self.written: set[bytes] = set()  # keys written since the last release (its changelog markers)
        self.last_release = self.last_begin = clock()

    def __len__(self) -> int:
        """Batches whose input is not released yet."""
        return len(self._open)

    def begin(self, batch_input: T) -> None:
        """A batch starts: the states it stores next belong to it."""
        self.last_begin = self.clock()
        self._open.append((self.states.begin_batch(), self.last_begin, batch_input))

    def flush_due(self, *, everything: bool = False) -> set[bytes]:
        """Write the entities first changed by batches that began ``interval_s`` ago or earlier (all of them
        when ``everything``, e.g. when the stage is idle); return the keys written (also kept in ``written``)."""
        before = None
        if not everything:
            cutoff = self.clock() - self.interval_s
            before = next((number for number, began, _ in self._open if began > cutoff), self.states.batch + 1)
        written = self.states.flush(before)
        self.written |= written
        return written

    def releasable(self) -> list[T]:
        """Take the inputs of the open batches whose every change is written (oldest first)."""
        oldest = self.states.oldest_dirty
        done = []
        while self._open and (oldest is None or self._open[0][0] < oldest):
            done.append(self._open.popleft()[2])
        return done

    def release_due(self, *, idle: bool = False) -> bool:
        """Time to release (and pay for the acknowledgements that must precede it): every ``interval_s``,
        or at once when the stage is idle."""
        return bool(self._open) and (idle or self.clock() - self.last_release >= self.interval_s)

    def idle(self) -> bool:
        """No batch began for ``interval_s`` while some input is still held."""
        return bool(self._open) and self.clock() - self.last_begin >= self.interval_s

    def released(self) -> None:
        self.written.clear()
        self.last_release = self.clock()

    def discard(self) -> None:
        """A rebalance: forget the open batches and the unwritten states (their input is read again)."""
        self._open.clear()
        self.written.clear()
        self.states.discard()
