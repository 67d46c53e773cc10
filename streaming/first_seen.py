"""Incremental "first seen" flags (``FirstSeen`` derived columns) with bounded state.

The definition (features.definitions): an event is first-seen when no *earlier* event, ordered
by ``(event_time, event_id)``, has the same key values within ``lookback``. A naive engine keeps
every event for the whole lookback (90 days for some flags). Two observations keep the state small
and still exact when events arrive out of order:

* An event older than the entity's watermark minus the allowed lateness is *settled*: every event
  the engine will still accept is later than it. For settled events only the newest one per key
  combination can ever decide a future flag, so one timestamp replaces them all.
* A late event can only turn flags of *later* events from True to False (it adds an earlier
  candidate, never removes one), so ``observe`` reports the ids it demotes and the caller fixes
  the contributions of exactly those events.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

import pydantic_core

# combo -> [newest settled time (us) or None, sorted [(time_us, event_id), ...] not yet settled]
# (JSON arrays on the wire; tuples in memory, which the garbage collector need not track)
Entries = dict[str, list[Any]]
_NEVER = float("inf")


def combo_key(values: Sequence[Any]) -> str:
    """A collision-free string for a tuple of key values (JSON: ids may contain any character).

    pydantic-core's serializer writes the same compact JSON as ``json.dumps(separators=(",", ":"),
    ensure_ascii=False)`` (stored states stay valid) at a fraction of the cost: this runs per event and flag.
    """
    return pydantic_core.to_json(list(values)).decode()


class FirstSeenIndex:
    """Times of the key combinations of one flag, for one entity."""

    __slots__ = ("changed", "due", "entries", "pending", "pieces")

    def __init__(self) -> None:
        self.entries: Entries = {}
        # per combo its encoded ``"combo":[settled,[[t,id],...]]``, re-encoded only when it ``changed``: a hot entity
        # (a merchant paid by thousands of accounts) holds thousands of combos and is written at every checkpoint,
        # while a batch changes a few of them; serializing (even visiting) all of them each time was the largest
        # cost of its writes. ``pieces`` may list combos in another order than ``entries`` (a JSON object's order
        # carries no meaning); ``changed`` is a dict, not a set, so the bytes do not depend on string hashing.
        self.pieces: dict[str, bytes] = {}
        self.changed: dict[str, None] = {}
        # combos changed (or dropped) since the index was last stored whole or as a delta (``EntityState.checkpoint``)
        self.pending: dict[str, None] = {}
        # the earliest cutoff at which ``settle`` has anything to do (it runs per update, over every combo)
        self.due: float = _NEVER

    def merge(self, entries: dict[str, Any], *, pending: bool) -> None:
        """Apply a stored index or delta (a null entry: the combo was dropped); ``pending``: not yet stored apart."""
        for combo, entry in entries.items():
            if entry is None:
                self.entries.pop(combo, None)
                self.pieces.pop(combo, None)
                self.changed.pop(combo, None)
            else:
                settled, recent = entry
                self.entries[combo] = [settled, [(t, event_id) for t, event_id in recent]]
                self.changed[combo] = None
                self.due = -_NEVER
            if pending:
                self.pending[combo] = None

    def observe(self, combo: str, t: int, event_id: str, lookback_us: int) -> tuple[bool, list[str]]:
        """Record event ``(t, event_id)``; return its flag and the ids of later events it demotes."""
        entry = self.entries.get(combo)
        self.changed[combo] = None
        self.pending[combo] = None
        if t < self.due:
            self.due = t
        if entry is None:
            self.entries[combo] = [None, [(t, event_id)]]
            return True, []
        settled, recent = entry
        first = settled is None or settled <= t - lookback_us
        pos = bisect.bisect_left(recent, (t, event_id))
        if first and pos > 0 and recent[pos - 1][0] > t - lookback_us:  # the newest earlier one decides
            first = False
        demoted = []
        for later_t, later_id in recent[pos:]:
            if later_t >= t + lookback_us:
                break
            demoted.append(later_id)
        recent.insert(pos, (t, event_id))
        return first, demoted

    def settle(self, cutoff: int, lookback_us: int) -> None:
        """Fold entries older than ``cutoff`` (watermark - lateness) into one time; drop what can never matter."""
        if cutoff < self.due:  # (``EntityState.expire`` tests this before calling)
            return
        dead = []
        due = _NEVER
        for combo, entry in self.entries.items():
            recent = entry[1]
            n = bisect.bisect_left(recent, (cutoff, ""))
            if n:
                newest = recent[n - 1][0]
                entry[0] = newest if entry[0] is None else max(entry[0], newest)
                del recent[:n]
                self.changed[combo] = self.pending[combo] = None
            if entry[0] is not None and entry[0] <= cutoff - lookback_us:
                entry[0] = None
                self.changed[combo] = self.pending[combo] = None
            if entry[0] is None and not recent:
                dead.append(combo)
                continue
            # next time this entry changes: its oldest recent event settles, or its settled time ages out
            due = min(due, recent[0][0] if recent else _NEVER, _NEVER if entry[0] is None else entry[0] + lookback_us)
        for combo in dead:
            del self.entries[combo]
            self.pieces.pop(combo, None)
            self.changed.pop(combo, None)  # (``pending`` has it: it changed on its way here)
        self.due = due

    def encode(self, combos: Iterable[str] | None = None) -> bytes:
        """The entries as a JSON object (what ``pydantic_core.to_json(self.entries)`` writes), from cached pieces;
        with ``combos``, only those (a dropped one as null: a delta)."""
        pieces, entries = self.pieces, self.entries
        for combo in self.changed:
            pieces[combo] = b"%s:%s" % (pydantic_core.to_json(combo), pydantic_core.to_json(entries[combo]))
        self.changed.clear()
        if combos is None:
            return b"{%s}" % b",".join(pieces.values())
        return b"{%s}" % b",".join(pieces.get(c) or b"%s:null" % pydantic_core.to_json(c) for c in combos)
