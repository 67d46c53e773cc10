"""Sources: a Kafka topic and its offline twin table, with the column types of the event contract.

Sources are derived from the pydantic event models in events/contracts.py, so a new event
field is a new source column without a second list to keep in sync. ``FirstSeen`` adds the
derived boolean columns that model "new device" / "first-time sender" / "new address" (see the
package docstring for their exact meaning).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.contracts import AccountChange, Event, Login, Transaction
from events.schemas import arrow_schema
from features.definitions.names import Duration, Name

ColumnType = Literal["string", "float64", "int64", "bool", "timestamp"]
MAX_LOOKBACK = timedelta(days=365)


def _column_type(dtype: pa.DataType) -> ColumnType:
    """Column type of one raw-table column, from the arrow schema the contracts define."""
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int64"
    if pa.types.is_floating(dtype):
        return "float64"
    if pa.types.is_string(dtype):
        return "string"
    raise TypeError(f"no column type for arrow type {dtype}")


class FirstSeen(BaseModel):
    """Derived column ``name``: TRUE when no earlier event had the same ``keys`` within ``lookback``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    keys: tuple[Name, ...] = Field(min_length=1)
    lookback: Duration
    description: str = ""

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.lookback > MAX_LOOKBACK:
            raise ValueError(f"first_seen {self.name!r}: lookback must be at most {MAX_LOOKBACK.days} days")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"first_seen {self.name!r}: keys must be distinct")
        return self


class Source(BaseModel):
    """A raw event stream: its topic, its offline table and its typed columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    topic: str = Field(min_length=1)
    table: Name
    columns: dict[Name, ColumnType]
    timestamp_column: Name = "event_time"
    id_column: Name = "event_id"
    first_seen: tuple[FirstSeen, ...] = ()

    @model_validator(mode="after")
    def _columns_known(self) -> Self:
        for required in (self.timestamp_column, self.id_column):
            if required not in self.columns:
                raise ValueError(f"source {self.name!r}: column {required!r} is missing from columns")
        seen: set[str] = set()
        for derived in self.first_seen:
            if derived.name in self.columns or derived.name in seen:
                raise ValueError(f"source {self.name!r}: first_seen name {derived.name!r} clashes with a column")
            seen.add(derived.name)
            for key in derived.keys:
                if key not in self.columns:
                    raise ValueError(f"source {self.name!r}: first_seen {derived.name!r} key {key!r} is not a column")
        return self

    @classmethod
    def from_event(cls, model: type[Event], name: str) -> Source:
        """The source of one event contract: its topic, table and field types."""
        columns = {f.name: _column_type(f.type) for f in arrow_schema(model)}
        return cls(name=name, topic=model.topic, table=model.table, columns=columns)

    def with_first_seen(self, name: str, keys: tuple[str, ...] | list[str], lookback: timedelta,
                        description: str = "") -> Source:
        """A copy with one more derived first-seen flag column."""
        flag = FirstSeen(name=name, keys=tuple(keys), lookback=lookback, description=description)
        return self.model_validate({**self.model_dump(), "first_seen": (*self.first_seen, flag)})

    @property
    def all_columns(self) -> dict[str, ColumnType]:
        """Raw columns plus the derived first-seen flags (bool)."""
        return {**self.columns, **{d.name: "bool" for d in self.first_seen}}

    def derived(self, name: str) -> FirstSeen | None:
        """The first-seen derivation called ``name``, or None for a raw column."""
        return next((d for d in self.first_seen if d.name == name), None)


TRANSACTIONS = (
    Source.from_event(Transaction, name="transactions")
    .with_first_seen("is_new_device", ("account_id", "device_id"), timedelta(days=30),
                     "first payment from this device for this account in 30 days")
    .with_first_seen("is_new_withdrawal_address", ("account_id", "withdrawal_address"), timedelta(days=90),
                     "first withdrawal to this address for this account in 90 days")
    .with_first_seen("is_first_time_sender", ("counterparty_id", "account_id"), timedelta(days=90),
                     "first transfer from this sender to this counterparty in 90 days")
)
LOGINS = (
    Source.from_event(Login, name="logins")
    .with_first_seen("is_new_device", ("account_id", "device_id"), timedelta(days=30),
                     "first login from this device for this account in 30 days")
    .with_first_seen("is_new_ip", ("account_id", "ip"), timedelta(days=30),
                     "first login from this IP for this account in 30 days")
)
ACCOUNT_CHANGES = Source.from_event(AccountChange, name="account_changes")

SOURCES: dict[str, Source] = {s.name: s for s in (TRANSACTIONS, LOGINS, ACCOUNT_CHANGES)}
