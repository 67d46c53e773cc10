"""Replay someone else's history: a Parquet, CSV or JSONL file mapped onto the contracts.

Bring-your-own-data should take one command, so the mapping is explicit and forgiving:
``--map SOURCE_COLUMN=contract_field`` renames columns, ``--set field=value`` fills a
field the file lacks (``--set currency=EUR``), ids may be numbers, times may be ISO
strings, timestamps or epoch numbers (unit inferred from magnitude), booleans may be
``yes``/``1``/``true``. Mapping a column to ``label`` turns every truthy row into a
``FraudLabel`` (fraud type from a column mapped to ``fraud_type`` or ``--fraud-type``;
label time from a ``label_time`` column or event time + ``--label-delay-hours``).

Every row is validated by its pydantic contract; bad rows are reported with their row
number and reason code (the same codes as the DLQ) and skipped only up to
``--max-errors``. Output goes to Kafka in event-time order (optionally paced and re-timed
to now) or straight into the offline store and the lake.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from pydantic import ValidationError

from events.contracts import AccountChange, Event, FraudLabel, Login, Transaction
from events.decode import Reason, Rejection, check_times, classify
from events.producer import EventProducer
from events.schemas import from_events
from events.sinks import HistoryWriter
from riskpipe.errors import UsageError
from riskpipe.settings import Settings

log = logging.getLogger(__name__)

TYPE_NAMES: dict[str, type[Event]] = {"transaction": Transaction, "login": Login, "account_change": AccountChange}
LABEL_TARGETS = ("label", "fraud_type", "label_time")
TRUE_WORDS = {"1", "true", "t", "yes", "y", "fraud", "fraudulent"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "legit", "legitimate", "", "none", "null", "nan"}
TIME_FIELDS = ("event_time", "label_time")


def read_file(path: Path) -> pa.Table:
    """Parquet (``.parquet``/``.pq``), CSV (``.csv``, ``.csv.gz``) or JSON lines (``.jsonl``/``.ndjson``)."""
    if not path.exists():
        raise UsageError(f"replay: file {path} does not exist")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pq.read_table(path)
        if name.endswith((".csv", ".csv.gz")):
            # ids like 00123 must stay strings: read every column as text, cast per contract later
            return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"replay: cannot read {path}: {str(exc).splitlines()[0]}") from exc
    raise UsageError(f"replay: {path.name}: unknown format (use .parquet, .csv, .csv.gz, .jsonl or .ndjson)")


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``["a=b", ...]`` -> ``{"a": "b"}`` with a clear error for anything else."""
    out: dict[str, str] = {}
    for pair in pairs:
        left, sep, right = pair.partition("=")
        if not sep or not left.strip() or (option == "--map" and not right.strip()):
            raise UsageError(f"{option} {pair!r}: expected NAME=VALUE")
        out[left.strip()] = right.strip()
    return out


@dataclass
class ReplayPlan:
    """How the columns of one file become contract events (and labels)."""

    model: type[Event]
    columns: dict[str, str]                   # contract field (or label target) -> source column
    constants: dict[str, str] = field(default_factory=dict)
    fraud_type: str = "stolen_payment"
    label_delay_hours: float = 0.0
    time_unit: str | None = None              # s, ms, us, ns for numeric times; None = infer
    id_prefix: str = "replay"

    @property
    def has_labels(self) -> bool:
        return "label" in self.columns


def make_plan(table: pa.Table, mapping: dict[str, str], constants: dict[str, str], *, event_type: str = "auto",
              fraud_type: str = "stolen_payment", label_delay_hours: float = 0.0, time_unit: str | None = None,
              id_prefix: str = "replay") -> ReplayPlan:
    """Check the mapping against the file and the contract; every problem is one clear UsageError."""
    missing_cols = [c for c in mapping if c not in table.column_names]
    if missing_cols:
        raise UsageError(f"--map: column(s) {missing_cols} not in the file; it has {table.column_names}")
    columns = {target: source for source, target in mapping.items()}
    if len(columns) != len(mapping):
        raise UsageError("--map: two columns are mapped to the same field")
    # unmapped columns whose name already is a contract field are taken as they are
    targets = set(columns) | set(constants)
    model = _pick_model(event_type, targets | set(table.column_names))
    fields = set(model.model_fields)
    for name in table.column_names:
        if name in fields | set(LABEL_TARGETS) and name not in columns and name not in mapping:
            columns[name] = name
    unknown = sorted((set(columns) | set(constants)) - fields - set(LABEL_TARGETS))
    if unknown:
        raise UsageError(f"--map/--set: {unknown} are not fields of {model.__name__} "
                         f"(fields: {sorted(fields)}; label targets: {list(LABEL_TARGETS)})")
    required = {n for n, f in model.model_fields.items() if f.is_required()} - {"event_id"}
    lacking = sorted(required - set(columns) - set(constants))
    if lacking:
        raise UsageError(f"{model.__name__} needs {lacking}: add --map COLUMN=FIELD or --set FIELD=VALUE")
    if fraud_type not in ("ato", "p2p_scam", "stolen_payment"):
        raise UsageError(f"--fraud-type {fraud_type!r}: use ato, p2p_scam or stolen_payment")
    if time_unit not in (None, "s", "ms", "us", "ns"):
        raise UsageError(f"--time-unit {time_unit!r}: use s, ms, us or ns")
    if label_delay_hours < 0:
        raise UsageError("--label-delay-hours must be >= 0")
    return ReplayPlan(model, columns, constants, fraud_type, label_delay_hours, time_unit, id_prefix)


def _pick_model(event_type: str, names: set[str]) -> type[Event]:
    if event_type != "auto":
        if event_type not in TYPE_NAMES:
            raise UsageError(f"--type {event_type!r}: use {', '.join(TYPE_NAMES)} or auto")
        return TYPE_NAMES[event_type]
    if names & {"txn_type", "amount"}:
        return Transaction
    if names & {"change_type"}:
        return AccountChange
    if names & {"success", "two_fa_used"}:
        return Login
    raise UsageError("--type auto: cannot tell the event type (map txn_type/amount, success or change_type, "
                     "or pass --type transaction|login|account_change)")


# -- value coercion: foreign data is messy; the contract decides what is valid -------------------
def _as_time(value: Any, unit: str | None) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        scale = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit or _infer_unit(abs(value))]
        return datetime.fromtimestamp(value / scale, tz=UTC)
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return value  # pydantic reports it as a bad timestamp
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # naive = UTC (documented)
    return value


def _infer_unit(magnitude: float) -> str:
    return "ns" if magnitude > 1e17 else "us" if magnitude > 1e14 else "ms" if magnitude > 1e11 else "s"


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return value


def _as_text(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _coerce(model: type[Event], name: str, value: Any, unit: str | None) -> Any:
    if value is None:
        return None
    if name in TIME_FIELDS:
        return _as_time(value, unit)
    annotation = str(model.model_fields[name].annotation) if name in model.model_fields else ""
    if name in ("success", "two_fa_used"):
        return _as_bool(value)
    if name == "amount" or "Literal[1]" in annotation:
        return value
    return _as_text(value)


@dataclass
class MappedRows:
    events: list[Event] = field(default_factory=list)
    labels: list[FraudLabel] = field(default_factory=list)
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(str(r.reason) for _, r in self.rejected)


def map_rows(table: pa.Table, plan: ReplayPlan, *, now: datetime | None = None) -> MappedRows:
    """Validate every row; events sorted by event time, labels by label time."""
    now = now or datetime.now(UTC)
    out = MappedRows()
    sources = sorted(set(plan.columns.values()))
    rows = table.select(sources).to_pylist()
    digest = hashlib.sha1(plan.id_prefix.encode()).hexdigest()[:8]
    for number, row in enumerate(rows, start=1):
        values: dict[str, Any] = {f: v for f, v in plan.constants.items() if f in plan.model.model_fields}
        for target, source in plan.columns.items():
            values[target] = row[source]
        label = _as_bool(values.pop("label", None))
        fraud_type = values.pop("fraud_type", None) or plan.fraud_type
        label_time = values.pop("label_time", None)
        data = {k: _coerce(plan.model, k, v, plan.time_unit) for k, v in values.items() if v is not None}
        data.setdefault("event_id", f"{plan.id_prefix}-{digest}-{number}")
        try:
            event = plan.model.model_validate(data)
        except ValidationError as exc:
            out.rejected.append((number, classify(exc)))
            continue
        problem = check_times(event, now)
        if problem is not None:
            out.rejected.append((number, problem))
            continue
        out.events.append(event)
        if label is True:
            when = (_as_time(label_time, plan.time_unit) if label_time is not None
                    else event.event_time.timestamp() + plan.label_delay_hours * 3600)
            if isinstance(when, float):
                when = datetime.fromtimestamp(when, tz=UTC)
            try:
                out.labels.append(FraudLabel(event_id=event.event_id, event_time=event.event_time,
                                             account_id=event.account_id, fraud_type=str(fraud_type),
                                             label_time=when))
            except ValidationError as exc:
                out.rejected.append((number, classify(exc)))
        elif label not in (None, False):
            out.rejected.append((number, Rejection(Reason.WRONG_TYPE, f"label value {label!r} is not a "
                                                   "boolean (use 1/0, true/false, yes/no)", "label")))
    out.events.sort(key=lambda e: e.event_time)
    out.labels.sort(key=lambda e: e.label_time)
    return out


def check_errors(mapped: MappedRows, max_errors: int | None) -> None:
    """Refuse the replay when more rows are bad than the user allowed."""
    if max_errors is None or len(mapped.rejected) <= max_errors:
        return
    first = "; ".join(f"row {n}: {r}" for n, r in mapped.rejected[:3])
    raise UsageError(f"replay: {len(mapped.rejected)} invalid row(s) ({dict(mapped.reasons())}); first: {first}. "
                     "Fix the mapping or allow them with --max-errors N")


# -- sinks -------------------------------------------------------------------------------------------
def _time_key(event: Event) -> datetime:
    return event.label_time if isinstance(event, FraudLabel) else event.event_time


def produce(mapped: MappedRows, producer: EventProducer, *, speed: float = 0.0, retime: bool = False,
            clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> Counter[str]:
    """Produce events and labels merged in time order.

    ``speed`` > 0 paces production: a gap of G seconds in the data takes G/speed seconds.
    ``retime`` rewrites event/label times to the moment each record is produced (a
    live-looking stream from old data); it needs pacing, else every record would be "now".
    """
    if retime and speed <= 0:
        raise UsageError("--retime needs --speed > 0 (a pace to map old times onto now)")
    stream: list[Event] = sorted([*mapped.events, *mapped.labels], key=_time_key)
    counts: Counter[str] = Counter()
    if not stream:
        return counts
    first = _time_key(stream[0]).timestamp()
    wall0 = clock()
    for record in stream:
        original = _time_key(record).timestamp()
        if speed > 0:
            due = wall0 + (original - first) / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        if retime:
            record = _retimed(record, first, wall0, speed)
        producer.produce(record)
        counts[record.topic] += 1
    producer.flush()
    return counts


def _retimed(record: Event, first: float, wall0: float, speed: float) -> Event:
    def shift(value: datetime) -> datetime:
        return datetime.fromtimestamp(wall0 + (value.timestamp() - first) / speed, tz=UTC)

    update: dict[str, datetime] = {"event_time": shift(record.event_time)}
    if isinstance(record, FraudLabel):
        update["label_time"] = shift(record.label_time)
    return record.model_copy(update=update)


def load_offline(mapped: MappedRows, settings: Settings, *, lake: bool = True) -> dict[str, int]:
    """Append the events and labels to the raw offline tables (and the lake)."""
    by_model: dict[type[Event], list[Event]] = {}
    for event in mapped.events:
        by_model.setdefault(type(event), []).append(event)
    tables = {model: from_events(events, model) for model, events in by_model.items()}
    if mapped.labels:
        tables[FraudLabel] = from_events(list(mapped.labels), FraudLabel)
    with HistoryWriter(settings, lake=lake) as writer:
        writer.write_events(tables)
        writer.flush()
        return dict(writer.rows)
