"""Name and duration rules shared by every definition object.

Names become SQL identifiers, Redis hash fields and Kafka topic suffixes, so they are
restricted to lowercase snake case: valid unquoted in DuckDB and Snowflake alike.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_WINDOW = timedelta(days=30)
MIN_WINDOW = timedelta(seconds=1)

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]


def whole_seconds(value: timedelta) -> timedelta:
    """Windows and lookbacks are whole seconds: the SQL intervals and stream buckets use seconds."""
    if value.microseconds or value <= timedelta(0):
        raise ValueError(f"must be a positive whole number of seconds, got {value}")
    return value


Duration = Annotated[timedelta, AfterValidator(whole_seconds)]


def seconds(value: timedelta) -> int:
    """A validated duration as an integer number of seconds."""
    return int(value.total_seconds())
