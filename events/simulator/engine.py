"""The simulation engine: advance a clock window by window and emit contract tables.

``Simulator.step(t0, t1)`` produces every event whose event time falls in ``[t0, t1)`` and
every label whose ``label_time`` falls before ``t1``. Fraud incidents started in a window
often continue past it (drains hours later, labels weeks later): those rows wait in a
pending buffer and are released by the window that reaches them. The same engine drives
history mode (one-day windows, as fast as possible) and live mode (sub-second windows at
the wall clock), so both modes have identical statistics, and a label is never emitted
before its ``label_time``.

Randomness comes from ``(seed, window number)``, so a run is reproducible for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from events.contracts import Event, FraudLabel
from events.schemas import TIMESTAMP, arrow_schema
from events.simulator import frames
from events.simulator.config import SimulationConfig
from events.simulator.legit import P_TXN, US_PER_HOUR, legit_events
from events.simulator.pool import hex_ids
from events.simulator.population import FRAUD_TYPE_CODES, Population, build_population
from events.simulator.scenarios import SCENARIOS, Truth, expected_txns, sample_label_delays

US_PER_DAY = 86_400_000_000
ID_BITS = 24  # low bits of an event number: row within a window; high bits: window number
MAX_ROWS_PER_WINDOW = 1 << ID_BITS
WARM_UP_WINDOW = (1 << ID_BITS) - 1  # window number reserved for the warm-up's event ids
WARM_UP_US = 3 * US_PER_DAY  # longer than any incident (a scam campaign runs up to ~2 days)

TRUTH_TABLE = "sim_ground_truth"
"""Offline table (and lake folder ``_ground_truth``) with the simulator's ground truth: every
fraudulent event, its scenario, regime and when (if ever) it gets labelled. It is for tests
and evaluation only; features and training must use ``labels``."""

TRUTH_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False), pa.field("event_topic", pa.string(), nullable=False),
    pa.field("account_id", pa.string(), nullable=False), pa.field("event_time", TIMESTAMP, nullable=False),
    pa.field("fraud_type", pa.string(), nullable=False), pa.field("incident_id", pa.int64(), nullable=False),
    pa.field("regime", pa.string(), nullable=False), pa.field("label_time", TIMESTAMP),
])


def to_us(value: datetime) -> int:
    """Aware datetime -> microseconds since the epoch (UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000)


@dataclass
class Batch:
    """What one window emitted: contract tables (events and labels) plus ground truth."""

    tables: dict[type[Event], pa.Table]
    truth: pa.Table

    @property
    def events(self) -> int:
        return sum(t.num_rows for m, t in self.tables.items() if m is not FraudLabel)

    @property
    def labels(self) -> int:
        return self.tables[FraudLabel].num_rows


@dataclass
class _LabelQueue:
    eid: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    t: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    account: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    fraud_type: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    label_t: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def push(self, **cols: np.ndarray) -> None:
        for name, values in cols.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))

    def pop_due(self, t1: int) -> dict[str, np.ndarray]:
        due = self.label_t < t1
        out = {}
        order = np.argsort(self.label_t[due], kind="stable")
        for name in ("eid", "t", "account", "fraud_type", "label_t"):
            values = getattr(self, name)
            out[name] = values[due][order]
            setattr(self, name, values[~due])
        return out

    def __len__(self) -> int:
        return len(self.eid)


class Simulator:
    """Stateful generator over consecutive windows (call ``step`` with increasing windows)."""

    def __init__(self, config: SimulationConfig, population: Population | None = None, *,
                 live_rate: float | None = None) -> None:
        self.config = config
        self.pop = population or build_population(config.accounts, config.seed)
        self.live_rate = live_rate
        self.start_us = to_us(config.start)
        self.window = 0
        self.pending = {kind: frames.empty(kind) for kind in frames.KINDS}
        self.labels = _LabelQueue()
        seed_tag = f"{config.seed & 0xFFFF:04x}"
        self.id_prefix = {kind: f"{p}{seed_tag}-" for kind, p in frames.ID_PREFIX.items()}
        self.fraud_started: dict[str, int] = dict.fromkeys(FRAUD_TYPE_CODES, 0)
        self._warm_up()

    def _warm_up(self) -> None:
        """Start fraud before the first window, so incidents already under way show up from t=0.

        Without it the first days would hold only the beginnings of incidents and the fraud
        rate would ramp up instead of matching the configuration over the whole run. Legit
        activity is not generated here (only its expected volume is needed).
        """
        rng = np.random.default_rng([self.config.seed, 0x5741524D])
        starts = np.arange(self.start_us - WARM_UP_US, self.start_us, US_PER_HOUR, dtype=np.int64)
        lengths = np.full(len(starts), US_PER_HOUR, dtype=np.int64)
        hours = (starts // US_PER_HOUR) % 24
        if self.live_rate is not None:
            expected = np.full(len(starts), self.live_rate * 3600 * P_TXN)
        else:
            expected = self.config.rate * P_TXN * (self.pop.activity[:, None] * self.pop.hourly[:, hours]).sum(axis=0)
        kept: dict[str, list[frames.Frame]] = {kind: [] for kind in frames.KINDS}
        for i in range(len(starts)):  # hour by hour: memory holds one hour of fraud, not three days
            fraud = self._fraud(rng, starts[i:i + 1], lengths[i:i + 1], expected[i:i + 1], regime_day=0.0)
            for kind in frames.KINDS:
                frame = frames.concat_kind(kind, fraud[kind])
                kept[kind].append(frames.take(frame, np.flatnonzero(frame["t"] >= self.start_us)))
        for kind in frames.KINDS:
            self.pending[kind] = self._prepare(kind, frames.concat_kind(kind, kept[kind]), WARM_UP_WINDOW, rng)

    def _prepare(self, kind: str, frame: frames.Frame, window: int, rng: np.random.Generator) -> frames.Frame:
        """Give new rows their event ids and (fraud transactions) their label delay, drawn once."""
        n = frames.size(frame)
        if n >= MAX_ROWS_PER_WINDOW:
            raise ValueError(f"window produced {n} {kind} events; use shorter windows")
        frame["eid"] = (window << ID_BITS) + np.arange(n, dtype=np.int64)
        if kind == "txn":
            is_fraud = frame["fraud_type"] >= 0
            frame["label_delay"][is_fraud] = sample_label_delays(rng, int(is_fraud.sum()), self.config.label_delay)
        return frame

    # -- fraud ------------------------------------------------------------------------------------
    def _fraud(self, rng: np.random.Generator, starts: np.ndarray, lengths: np.ndarray,
               expected_legit_txns: np.ndarray, regime_day: float | None = None) -> dict[str, list[frames.Frame]]:
        """Incidents per hour segment under the regime in force, sized to hit the fraud rate."""
        out: dict[str, list[frames.Frame]] = {kind: [] for kind in frames.KINDS}
        odds = self.config.fraud_rate / (1.0 - self.config.fraud_rate)
        for seg_start, seg_len, legit_txns in zip(starts, lengths, expected_legit_txns, strict=True):
            day = (seg_start - self.start_us) / US_PER_DAY if regime_day is None else regime_day
            regime_index, regime = self.config.regime_at(day)
            target = odds * legit_txns
            for fraud_type, scenario in SCENARIOS.items():
                share = regime.share(fraud_type)
                if share == 0 or target == 0:
                    continue
                n = rng.poisson(target * share / expected_txns(fraud_type, regime))
                if n == 0:
                    continue
                t = seg_start + (rng.random(n) * seg_len).astype(np.int64)
                first = self.fraud_started[fraud_type]
                self.fraud_started[fraud_type] += n
                code = FRAUD_TYPE_CODES.index(fraud_type)
                incident = (code << 40) + first + np.arange(n, dtype=np.int64)
                truth = Truth(fraud_type, regime_index, incident)
                for kind, frame in scenario(self.pop, rng, t, regime, truth).items():
                    out[kind].append(frame)
        return out

    # -- one window ---------------------------------------------------------------------------------
    def step(self, t0: int, t1: int) -> Batch:
        """Emit events with event time in [t0, t1) and labels with label_time < t1 (microseconds)."""
        rng = np.random.default_rng([self.config.seed, 0x53494D, self.window])
        legit = legit_events(self.pop, rng, t0, t1, rate=self.config.rate, total_per_second=self.live_rate)
        fraud = self._fraud(rng, legit.starts, legit.lengths, legit.expected_txns)
        tables: dict[type[Event], pa.Table] = {}
        truth_parts: list[pa.Table] = []
        for kind, model in frames.KINDS.items():
            new = self._prepare(kind, frames.concat_kind(kind, [legit.frames[kind], *fraud[kind]]), self.window, rng)
            merged = frames.concat_kind(kind, [self.pending[kind], new])
            due = merged["t"] < t1
            emit = frames.take(merged, np.flatnonzero(due)[np.argsort(merged["t"][due], kind="stable")])
            self.pending[kind] = frames.take(merged, np.flatnonzero(~due))
            tables[model] = frames.materialize(kind, emit, self.pop.pool, self.pop.pool.offset["account"],
                                               self.id_prefix[kind])
            truth_parts.append(self._truth(kind, emit, tables[model]))
            if kind == "txn":
                labelled = (emit["fraud_type"] >= 0) & (emit["label_delay"] >= 0)
                self.labels.push(eid=emit["eid"][labelled], t=emit["t"][labelled],
                                 account=emit["account"][labelled], fraud_type=emit["fraud_type"][labelled],
                                 label_t=emit["t"][labelled] + emit["label_delay"][labelled])
        tables[FraudLabel] = self._labels(self.labels.pop_due(t1))
        self.window += 1
        return Batch(tables, pa.concat_tables(truth_parts))

    def _truth(self, kind: str, emit: frames.Frame, table: pa.Table) -> pa.Table:
        fraud = np.flatnonzero(emit["fraud_type"] >= 0)
        rows = frames.take(emit, fraud)
        delay = rows["label_delay"]
        label_t = np.where(delay >= 0, rows["t"] + delay, 0)
        regimes = np.array([r.name for r in self.config.regimes], dtype=object)
        return pa.Table.from_arrays([
            table["event_id"].take(pa.array(fraud)),
            pa.array(np.full(len(fraud), frames.KINDS[kind].topic, dtype=object), pa.string()),
            table["account_id"].take(pa.array(fraud)),
            pa.array(rows["t"], TIMESTAMP),
            self.pop.pool.take(self.pop.code("fraud_type", rows["fraud_type"])),
            pa.array(rows["incident"], pa.int64()),
            pa.array(regimes[rows["regime"]], pa.string()),
            pa.array(label_t, TIMESTAMP, mask=delay < 0),
        ], schema=TRUTH_SCHEMA)

    def _labels(self, due: dict[str, np.ndarray]) -> pa.Table:
        n = len(due["eid"])
        schema = arrow_schema(FraudLabel)
        return pa.Table.from_arrays([
            pa.array(np.ones(n, dtype=np.int32)),
            hex_ids(self.id_prefix["txn"], due["eid"]),
            pa.array(due["t"], TIMESTAMP),
            self.pop.pool.take(due["account"] + self.pop.pool.offset["account"]),
            self.pop.pool.take(self.pop.code("fraud_type", due["fraud_type"])),
            pa.array(due["label_t"], TIMESTAMP),
        ], schema=schema)

    # -- bookkeeping --------------------------------------------------------------------------------
    def pending_events(self) -> int:
        """Scheduled fraud events not emitted yet (past the last window's end)."""
        return sum(frames.size(f) for f in self.pending.values())

    def pending_labels(self) -> int:
        """Labels whose label_time is after the last window: "not yet known"."""
        return len(self.labels)
