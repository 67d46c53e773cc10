"""Frames: the simulator's working form of events, columns of int64/float/bool numpy arrays.

String-valued columns hold indexes into the population's ``StringPool``; ``materialize``
turns a frame into the contract's Arrow table in one pass. Ground-truth columns
(``fraud_type`` code or -1, ``incident``, ``regime``, ``label_delay`` in microseconds or -1
for "never reported") travel with the rows and are split off into the separate
ground-truth table, never into the raw event tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from events.contracts import AccountChange, Event, Login, Transaction
from events.schemas import TIMESTAMP, arrow_schema
from events.simulator.pool import StringPool, hex_ids

Frame = dict[str, np.ndarray]

KINDS: dict[str, type[Event]] = {"txn": Transaction, "login": Login, "change": AccountChange}
ID_PREFIX = {"txn": "t", "login": "l", "change": "c"}

# frame column -> contract field; string columns are pool indexes, -1 = null
FIELD_OF: dict[str, dict[str, str]] = {
    "txn": {"txn_type": "txn_type", "amount": "amount", "currency": "currency", "counterparty": "counterparty_id",
            "payment_method": "payment_method_id", "withdrawal_address": "withdrawal_address",
            "device": "device_id", "ip": "ip", "country": "country", "channel": "channel"},
    "login": {"success": "success", "device": "device_id", "ip": "ip", "country": "country",
              "two_fa_used": "two_fa_used", "channel": "channel"},
    "change": {"change_type": "change_type", "device": "device_id", "ip": "ip", "country": "country",
               "new_withdrawal_address": "new_withdrawal_address"},
}
TRUTH_COLUMNS = ("fraud_type", "incident", "regime", "label_delay")
NUMERIC = {"amount", "success", "two_fa_used"}


def columns(kind: str) -> tuple[str, ...]:
    return ("eid", "t", "account", *FIELD_OF[kind], *TRUTH_COLUMNS)


def empty(kind: str) -> Frame:
    out: Frame = {c: np.empty(0, dtype=np.int64) for c in columns(kind)}
    out["amount"] = np.empty(0, dtype=np.float64)
    for flag in ("success", "two_fa_used"):
        out[flag] = np.empty(0, dtype=bool)
    return {c: out[c] for c in columns(kind)}


def build(kind: str, n: int, **cols: np.ndarray | int | float | bool) -> Frame:
    """A frame of ``n`` rows; scalars broadcast; omitted truth columns mean legitimate/never."""
    defaults: dict[str, int] = {"eid": -1, "fraud_type": -1, "incident": -1, "regime": -1, "label_delay": -1}
    frame: Frame = {}
    for name in columns(kind):
        value = cols.pop(name, defaults.get(name, -1))
        array = np.asarray(value)
        if name == "amount":
            array = array.astype(np.float64)
        elif name in ("success", "two_fa_used"):
            array = array.astype(bool)
        else:
            array = array.astype(np.int64)
        frame[name] = np.broadcast_to(array, (n,)).copy() if array.ndim == 0 else array
        if len(frame[name]) != n:
            raise ValueError(f"frame {kind}: column {name} has {len(frame[name])} rows, expected {n}")
    if cols:
        raise ValueError(f"frame {kind}: unknown columns {sorted(cols)}")
    return frame


def concat(frames: Sequence[Frame]) -> Frame:
    frames = [f for f in frames if len(f["t"])]
    if not frames:
        raise ValueError("concat needs at least one non-empty frame")  # callers pass empty() first
    return {c: np.concatenate([f[c] for f in frames]) for c in frames[0]}


def concat_kind(kind: str, frames: Sequence[Frame]) -> Frame:
    nonempty = [f for f in frames if len(f["t"])]
    return concat(nonempty) if nonempty else empty(kind)


def take(frame: Frame, index: np.ndarray) -> Frame:
    return {c: v[index] for c, v in frame.items()}


def size(frame: Frame) -> int:
    return len(frame["t"])


def materialize(kind: str, frame: Frame, pool: StringPool, account_offset: int, id_prefix: str) -> pa.Table:
    """The contract table for ``frame`` (which must already carry event ids)."""
    model = KINDS[kind]
    n = size(frame)
    arrays: dict[str, pa.Array] = {
        "schema_version": pa.array(np.ones(n, dtype=np.int32)),
        "event_id": hex_ids(id_prefix, frame["eid"]),
        "event_time": pa.array(frame["t"], type=TIMESTAMP),
        "account_id": pool.take(frame["account"] + account_offset),
    }
    for col, field in FIELD_OF[kind].items():
        arrays[field] = pa.array(frame[col]) if col in NUMERIC else pool.take(frame[col])
    schema = arrow_schema(model)
    return pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)
