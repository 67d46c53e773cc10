"""Entity states in a key-value table (a Faust changelog-backed Table in the worker, a dict in tests).

One table value per entity holds the states of every group keyed by that entity, so a batch
writes one changelog record per touched entity, not one per (entity, group). Values are bytes
(JSON, written and parsed by pydantic-core's Rust codec: 3-5x cheaper than the json module) so the
changelog is readable with any Kafka tool and recovery needs no pickling.

Decoding JSON on every access would cost more than the window arithmetic, so decoded states
are cached next to the bytes they came from; the cache entry is trusted only while the table
still holds *that very bytes object* (an identity check), so a value restored from the
changelog after a rebalance is always decoded afresh. Encoding is cached the other way round:
each group's state keeps its encoded JSON until a batch applies events to it, so an account
touched by a login re-encodes its login state, not its transaction and change states.

Writes are *checkpointed*: ``store`` keeps the new states in memory (dirty, remembering the batch that
first changed them) and ``flush`` writes each dirty entity once, all of them or those first changed
before a given batch (``streaming.checkpoints`` spreads a checkpoint over the batches that way). The
offsets of a batch are committed only once no entity it changed is still dirty, so the table and the
offsets always describe the same point of the input; between writes an entity touched by many
batches costs one changelog record, not one per batch. A state holds every event of the entity
inside the horizon, so a record is far larger than the event that caused it: per-batch writes
sent ~3.8 kB of changelog per 330-byte event to the broker.

A long state is therefore stored in *records* (``EntityState.checkpoint``): *segments*, runs of its
events sealed under keys of their own (``record_key``) and written again only when an event in them
changes, and its first-seen indexes as deltas of the combos that changed; the entity's value (the
*head*) keeps the newest events and names the records by generation. A merchant paid by thousands of
accounts costs a checkpoint the payments since the previous one, not 30 days of them and a combo per
payer. New records go to the table before the head that names them and replaced ones are deleted
after it, so a crash in between recovers the previous value whole.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any, Protocol

import pydantic_core

from streaming.window_state import SEGMENT_EVENTS, EntityState, GroupPlan

TABLE_FORMAT = 1
_HEAD = b'{"f":%d,"groups":{' % TABLE_FORMAT
# chunk keys: entity key, NUL, generation, NUL, index; record keys: entity key, NUL, "s" generation (chunked: record
# key, NUL, generation, NUL, index). NUL is never in an entity key (ids are printable)
CHUNK_SEP = b"\x00"
MAX_RECORD_BYTES = 512 * 1024  # a value above this is chunked: Kafka refuses records over ~1 MB by default
_CHUNKED = b'{"f":%d,"chunked":' % TABLE_FORMAT
CHANGELOG_MARKER = b"\x00rp-changelog-marker"  # never an entity key (ids are printable); see streaming.faust_app


def record_key(key: bytes, generation: int) -> bytes:
    """Where a record of a state of the entity ``key`` is stored: a sealed segment or a first-seen index record
    (``EntityState.checkpoint``)."""
    return b"%s%ss%d" % (key, CHUNK_SEP, generation)


def routing_key(key: bytes) -> bytes:
    """The entity key a table key belongs to (a chunk's key starts with it): its changelog partition's key."""
    return key.split(CHUNK_SEP, 1)[0]


class KeyValueTable(Protocol):
    """Keys are UTF-8 bytes: with the ``raw`` codec the changelog key equals the source topic's key, so
    records filed under the murmur2 partition of ``routing_key(key)`` are recovered by the entity's owner."""

    def get(self, key: bytes, default: Any = None) -> Any: ...
    def __setitem__(self, key: bytes, value: bytes) -> None: ...
    def __delitem__(self, key: bytes) -> None: ...


class StateTable:
    """Load and store ``{group name: EntityState}`` per entity key."""

    def __init__(self, table: KeyValueTable, plans: Mapping[str, GroupPlan], *, cache_entries: int = 200_000,
                 segment_events: int = SEGMENT_EVENTS) -> None:
        self.table = table
        self.segment_events = segment_events
        self.plans = dict(plans)
        self._cache: dict[str, tuple[bytes, dict[str, EntityState]]] = {}
        self._cache_entries = cache_entries
        # stored since the last flush, not yet in the table: (the batch that first changed them, states), in that order
        self._dirty: dict[str, tuple[int, dict[str, EntityState]]] = {}
        self.batch = 0  # the number of the current batch (``begin_batch``)
        self._generation = time.time_ns()  # chunk and record generations: unique across restarts of the worker
        self._dropped: dict[str, list[int]] = {}  # records of groups no longer computed, deleted at the next write

    def load(self, key: str) -> dict[str, EntityState]:
        dirty = self._dirty.get(key)
        if dirty is not None:
            return dirty[1]
        encoded = key.encode()
        raw = self.table.get(encoded)
        if raw is None:
            return {}
        cached = self._cache.get(key)
        if cached is not None and cached[0] is raw:
            return cached[1]
        payload = pydantic_core.from_json(self._joined(key, encoded, raw))
        if payload.get("f") != TABLE_FORMAT:
            raise ValueError(f"table value of {key!r}: format {payload.get('f')!r} is not {TABLE_FORMAT}")
        # Groups no longer computed (removed from stream_groups) are dropped, their records at the next write; new
        # ones start empty.
        dropped = [g for name, state in payload["groups"].items() if name not in self.plans
                   for g in EntityState.named(state)]
        if dropped:
            self._dropped[key] = dropped

        def read(generation: int) -> Any:
            return pydantic_core.from_json(self._record(key, generation))

        return {name: EntityState.from_payload(self.plans[name], state, read)
                for name, state in payload["groups"].items() if name in self.plans}

    def begin_batch(self) -> int:
        """Number the batch whose changes ``store`` receives next."""
        self.batch += 1
        return self.batch

    def store(self, key: str, states: dict[str, EntityState]) -> None:
        """Keep ``states`` as the entity's current value; the table gets it at a ``flush``."""
        self._dirty[key] = (self._dirty.get(key, (self.batch,))[0], states)

    @property
    def dirty(self) -> int:
        """Entities stored since the last flush."""
        return len(self._dirty)

    @property
    def oldest_dirty(self) -> int | None:
        """The earliest batch with a change not yet flushed (None: the table holds everything)."""
        return next((since for since, _ in self._dirty.values()), None)

    def flush(self, before: int | None = None) -> set[bytes]:
        """Write the dirty entities first changed before batch ``before`` (all of them when None) once each;
        return the entity keys written (for the changelog markers)."""
        written = set()
        due = list(self._dirty) if before is None else list(
            itertools.takewhile(lambda key: self._dirty[key][0] < before, self._dirty))
        for key in due:
            states = self._dirty.pop(key)[1]
            encoded = key.encode()
            previous = self.table.get(encoded)
            live = {name: state for name, state in states.items() if not state.empty}
            if live:
                # sealed segments first, then the head that names them: a crash in between leaves the previous head,
                # whose segments are all still there (they are deleted only after the new head is written)
                for state in live.values():
                    for generation, value in state.checkpoint(self._new_generation, self.segment_events):
                        self._put(record_key(encoded, generation), value)
                # the JSON object written piece by piece: a state is re-encoded only when a batch changed it
                # (``EntityState.encode`` caches); state names are plain identifiers, nothing to escape
                head = self._put(encoded, b"".join((_HEAD, b",".join(
                    b'"%s":%s' % (n.encode(), s.encode()) for n, s in live.items()), b"}}")))
                if len(self._cache) >= self._cache_entries:
                    self._cache.clear()  # crude but bounded; the next batch re-decodes what it touches
                self._cache[key] = (head, live)
            else:
                self._cache.pop(key, None)
                if previous is not None:
                    del self.table[encoded]
            if previous is not None:
                self._drop_chunks(encoded, previous)
            for generation in self._dropped.pop(key, ()):
                self._delete(record_key(encoded, generation))
            for name, state in states.items():
                for generation in (state.stale if name in live else [*state.stale, *state.generations()]):
                    self._delete(record_key(encoded, generation))
                state.stale.clear()
            if live or previous is not None:
                written.add(encoded)
        return written

    def _new_generation(self) -> int:
        self._generation += 1
        return self._generation

    def _put(self, key: bytes, raw: bytes) -> bytes:
        """Write ``raw`` at ``key``, chunked when it is too large for one record; return what ``key`` now holds."""
        head = raw if len(raw) <= MAX_RECORD_BYTES else self._write_chunks(key, raw)
        self.table[key] = head
        return head

    def _delete(self, key: bytes) -> None:
        value = self.table.get(key)
        if value is not None:
            del self.table[key]
            self._drop_chunks(key, value)

    def _record(self, key: str, generation: int) -> bytes:
        table_key = record_key(key.encode(), generation)
        value = self.table.get(table_key)
        if value is None:
            raise ValueError(f"table value of {key!r}: record of generation {generation} is missing from the table")
        return self._joined(key, table_key, value)

    # A hot entity (a merchant paid by thousands of accounts) holds more events than one Kafka record takes. Its
    # value is split into chunks under keys of their own, written *before* the head that names them, and the
    # previous chunks are deleted only after it: a crash in between recovers the old or the new value whole,
    # never a mix. Each generation's keys are new, so compaction never merges two values either.
    def _write_chunks(self, key: bytes, raw: bytes) -> bytes:
        generation = self._new_generation()
        n = -(-len(raw) // MAX_RECORD_BYTES)
        for i in range(n):
            self.table[self._chunk_key(key, generation, i)] = raw[i * MAX_RECORD_BYTES:(i + 1) * MAX_RECORD_BYTES]
        return b"%s[%d,%d]}" % (_CHUNKED, generation, n)

    @staticmethod
    def _chunk_key(key: bytes, generation: int, index: int) -> bytes:
        return b"%s%s%d%s%d" % (key, CHUNK_SEP, generation, CHUNK_SEP, index)

    @staticmethod
    def _chunks(head: bytes) -> tuple[int, int] | None:
        if not head.startswith(_CHUNKED):
            return None
        generation, n = pydantic_core.from_json(head)["chunked"]
        return generation, n

    def _drop_chunks(self, key: bytes, previous_head: bytes) -> None:
        chunks = self._chunks(previous_head)
        if chunks is not None:
            for i in range(chunks[1]):
                del self.table[self._chunk_key(key, chunks[0], i)]

    def _joined(self, key: str, table_key: bytes, raw: bytes) -> bytes:
        """The value at ``table_key`` (``raw``), its chunks joined; ``key`` names the entity in errors."""
        chunks = self._chunks(raw)
        if chunks is None:
            return raw
        parts = [self.table.get(self._chunk_key(table_key, chunks[0], i)) for i in range(chunks[1])]
        if any(part is None for part in parts):
            raise ValueError(f"table value of {key!r}: chunk(s) of generation {chunks[0]} are missing from the table")
        return b"".join(parts)

    def discard(self) -> None:
        """Forget what was not flushed (after a rebalance its events are re-read from the committed offsets)."""
        self._dirty.clear()
        self._cache.clear()
        self._dropped.clear()
