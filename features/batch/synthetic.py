"""Seeded synthetic raw events in the contract's columns, for engine tests and benchmarks.

Small alphabets (few accounts, devices, addresses) on purpose: they make repeats, ties and
first-seen/not-first-seen cases common, which is where engines disagree if they ever do.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd

TXN_TYPES = ("card_payment", "p2p_transfer", "deposit", "withdrawal")


def synthetic_transactions(n: int, *, seed: int = 0, start: datetime = datetime(2024, 1, 1),
                           span: timedelta = timedelta(days=3), accounts: int = 5, keys: int = 4) -> pd.DataFrame:
    """``n`` rows shaped like ``events_transactions`` (naive UTC times, whole seconds so ties occur).

    ``keys`` is how many distinct devices, payment methods, counterparties and addresses exist:
    tiny for tests (collisions), about the number of accounts for realistic benchmarks.
    """
    rng = random.Random(seed)
    pick = rng.choice
    total = int(span.total_seconds())

    def key(prefix: str) -> str:
        return f"{prefix}{rng.randrange(keys)}"

    rows = []
    for i in range(n):
        txn_type = pick(TXN_TYPES)
        rows.append({
            "schema_version": 1,
            "event_id": f"e{i:08d}",
            "event_time": start + timedelta(seconds=rng.randrange(total)),
            "account_id": f"a{rng.randrange(accounts)}",
            "txn_type": txn_type,
            "amount": round(rng.uniform(1, 2500), 2),
            "currency": "USD",
            "counterparty_id": pick([key("c"), f"a{rng.randrange(accounts)}"]) if txn_type == "p2p_transfer"
            else None,
            "payment_method_id": pick([key("pm"), None]) if txn_type == "card_payment" else None,
            "withdrawal_address": key("w") if txn_type == "withdrawal" else None,
            "device_id": key("d"),
            "ip": pick(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            "country": pick(["US", "DE", "NG"]),
            "channel": pick(["web", "ios"]),
        })
    return pd.DataFrame(rows)


def synthetic_logins(n: int, *, seed: int = 0, start: datetime = datetime(2024, 1, 1),
                     span: timedelta = timedelta(days=3), accounts: int = 5) -> pd.DataFrame:
    """``n`` rows shaped like ``events_logins``."""
    rng = random.Random(seed)
    pick = rng.choice
    total = int(span.total_seconds())
    return pd.DataFrame([{
        "schema_version": 1,
        "event_id": f"l{i:08d}",
        "event_time": start + timedelta(seconds=rng.randrange(total)),
        "account_id": f"a{rng.randrange(accounts)}",
        "success": rng.random() < 0.7,
        "device_id": pick(["d1", "d2", "d3", "d4"]),
        "ip": pick(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        "country": pick(["US", "DE", "NG"]),
        "two_fa_used": rng.random() < 0.5,
        "channel": pick(["web", "ios"]),
    } for i in range(n)])
