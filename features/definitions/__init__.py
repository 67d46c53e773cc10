"""Feature definitions: entities, sources and feature groups, declared once in Python.

One definition drives every engine: the stream engine (incremental, in Python), the batch
engine (generated SQL on DuckDB or Snowflake) and the naive pandas oracle that the tests
treat as the truth. The semantics below are THE contract all three follow; they are written
down once, here.

Window semantics
----------------
* A window of length ``W`` evaluated at time ``t`` (the *as-of* time) covers the events with
  ``t - W < event_time <= t``: the lower bound is exclusive, the upper inclusive, so an event
  stamped exactly at ``t`` counts and one stamped exactly at ``t - W`` does not. Windows are
  whole seconds from 1 s to 30 days; times have microsecond precision and are UTC.
* Events whose entity key (the group's ``entity.join_key`` column) is NULL belong to no entity
  and are ignored by that group.
* Filters (``Filter(field, op, value)``, ANDed per aggregation) follow SQL three-valued logic: a
  comparison against a missing value is false, so ``!=`` and ``not_in`` do not match NULLs. Use
  ``is_null`` / ``not_null`` to test for missing values.
* ``count``: number of matching events; 0 for an empty window.
* ``sum``: sum of the non-NULL values of the matching events; 0 for an empty window (a velocity
  of nothing is zero, not unknown).
* ``mean`` / ``min`` / ``max``: over the non-NULL values; NULL when there are none.
* ``count_distinct``: number of distinct non-NULL values; 0 for an empty window.
* ``last``: the value of the newest matching event whose value is not NULL; "newest" orders by
  ``(event_time, event_id)``, so of two events at the same instant the larger ``event_id`` wins.
  NULL when there is none.
* Event ids are assumed unique within a raw table (the ingestion sinks are idempotent).

Stateful "first time" features
------------------------------
"first-time sender", "new withdrawal address" and "new device" need state beyond one window.
They are modelled as a *derived column* of the source (``FirstSeen``), not as free SQL, so every
engine can compute them: ``FirstSeen(name, keys, lookback)`` adds a boolean column that is TRUE
for an event when no *earlier* event of the same source has the same values of ``keys`` within
the lookback, i.e. no event ``p`` with ``(p.event_time, p.event_id) < (e.event_time, e.event_id)``
and ``e.event_time - lookback < p.event_time``. It is NULL when any key is NULL. Aggregations then
filter on it like on any column (``Filter("is_new_withdrawal_address", "==", True)``). The
lookback bounds the state the stream engine keeps (one timestamp per key combination) and the
history the batch engine scans; a bare "ever seen" would need unbounded history neither has.

Groups
------
* ``WindowedFeatureGroup`` (``schedule="stream"``): windowed aggregations over one source,
  computed by the stream engine and, from the same definition, by the batch engine.
* ``SqlFeatureGroup`` (``schedule="hourly"|"nightly"``): a SQL transformation computed only by the
  batch engine on its schedule; the SQL sees ``$as_of`` and ``$lookback_start`` and must describe
  the window ``lookback_start < event_time <= as_of``.

Versioning: the author declares ``version``; the registry refuses a changed computation whose
version was not bumped (see ``features.registry``), because the version is part of the offline
table name and the online key that models were trained against.
"""

from __future__ import annotations

from features.definitions.catalog import FEATURE_GROUPS, get_group
from features.definitions.entities import ACCOUNT, COUNTERPARTY, DEVICE, ENTITIES, IP, PAYMENT_METHOD, Entity
from features.definitions.filters import Filter
from features.definitions.groups import (
    Aggregation,
    Feature,
    FeatureGroup,
    FeatureGroupBase,
    SqlFeatureGroup,
    WindowedFeature,
    WindowedFeatureGroup,
    parse_group,
    window_label,
)
from features.definitions.sources import ACCOUNT_CHANGES, LOGINS, SOURCES, TRANSACTIONS, FirstSeen, Source

__all__ = [
    "ACCOUNT",
    "ACCOUNT_CHANGES",
    "COUNTERPARTY",
    "DEVICE",
    "ENTITIES",
    "FEATURE_GROUPS",
    "IP",
    "LOGINS",
    "PAYMENT_METHOD",
    "SOURCES",
    "TRANSACTIONS",
    "Aggregation",
    "Entity",
    "Feature",
    "FeatureGroup",
    "FeatureGroupBase",
    "Filter",
    "FirstSeen",
    "Source",
    "SqlFeatureGroup",
    "WindowedFeature",
    "WindowedFeatureGroup",
    "get_group",
    "parse_group",
    "window_label",
]
