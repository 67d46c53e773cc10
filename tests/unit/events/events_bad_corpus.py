"""Loader of the bad-event corpus (``data/bad_events.json``), shared by the unit and broker tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CORPUS_PATH = Path(__file__).parent / "data" / "bad_events.json"


@dataclass(frozen=True)
class Case:
    name: str
    topic: str
    key: bytes | None
    value: bytes
    expected_reason: str


def _value(entry: dict) -> bytes:
    return entry["text"].encode("utf-8") if "text" in entry else bytes.fromhex(entry["hex"])


def _key(entry: dict) -> bytes | None:
    return None if entry["key"] is None else str(entry["key"]).encode()


def load_cases() -> list[Case]:
    doc = json.loads(CORPUS_PATH.read_text())
    return [Case(c["name"], c["topic"], _key(c), _value(c), c["expected_reason"]) for c in doc["cases"]]


def load_valid() -> list[Case]:
    doc = json.loads(CORPUS_PATH.read_text())
    return [Case("valid", v["topic"], _key(v), _value(v), "") for v in doc["valid"]]
