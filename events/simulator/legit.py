"""Legitimate activity for a time window, generated per account with numpy.

Counts are Poisson per (account, hour segment) with intensity ``rate x activity x hourly
profile``, so busy accounts, quiet accounts and each account's time-of-day rhythm all
show up in the data; the same code serves a one-day history chunk (24 segments) and a
one-second live tick (1 segment). Details of each event come from the account's own
profile: its devices, IPs, cards, friends, spending level and channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from events.simulator import frames
from events.simulator.population import CHANNELS, MARKETS, MAX_FRIENDS, Population

US_PER_HOUR = 3_600_000_000
P_TXN, P_LOGIN = 0.70, 0.285  # the rest (1.5%) are account changes
TXN_TYPE_P = np.array([0.62, 0.18, 0.10, 0.10])  # card_payment, p2p_transfer, deposit, withdrawal
TXN_AMOUNT_SHIFT = np.array([0.0, 0.3, 1.2, 1.0])
P_TRAVEL = 0.01
P_OTHER_CHANNEL = 0.12
P_FAILED_LOGIN = 0.03


@dataclass
class LegitBatch:
    frames: dict[str, frames.Frame]
    starts: np.ndarray
    lengths: np.ndarray
    expected_txns: np.ndarray
    """Expected legitimate transactions per hour segment: the base the fraud rate is applied to."""


def _segments(t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split [t0, t1) at UTC hour boundaries: (starts, lengths in us, hour of day)."""
    edges = [t0]
    nxt = (t0 // US_PER_HOUR + 1) * US_PER_HOUR
    while nxt < t1:
        edges.append(nxt)
        nxt += US_PER_HOUR
    edges.append(t1)
    starts = np.array(edges[:-1], dtype=np.int64)
    lengths = np.diff(np.array(edges, dtype=np.int64))
    return starts, lengths, (starts // US_PER_HOUR) % 24


def legit_events(pop: Population, rng: np.random.Generator, t0: int, t1: int, *, rate: float,
                 total_per_second: float | None = None) -> LegitBatch:
    """Legitimate events in [t0, t1) (microseconds since the epoch).

    ``rate`` is events per account per day; ``total_per_second`` (live mode) rescales the
    intensities so the whole population emits that many events per second on average.
    """
    starts, lengths, hours = _segments(t0, t1)
    lam = rate * pop.activity[:, None] * pop.hourly[:, hours] * (lengths / US_PER_HOUR)[None, :]
    if total_per_second is not None:
        lam *= total_per_second * (t1 - t0) / 1e6 / max(lam.sum(), 1e-12)
    counts = rng.poisson(lam)
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    account, seg = np.divmod(cell, len(starts))
    t = starts[seg] + (rng.random(len(cell)) * lengths[seg]).astype(np.int64)
    u = rng.random(len(cell))
    kinds = {"txn": u < P_TXN, "login": (u >= P_TXN) & (u < P_TXN + P_LOGIN), "change": u >= P_TXN + P_LOGIN}
    out = {
        "txn": _transactions(pop, rng, account[kinds["txn"]], t[kinds["txn"]]),
        "login": _logins(pop, rng, account[kinds["login"]], t[kinds["login"]]),
        "change": _changes(pop, rng, account[kinds["change"]], t[kinds["change"]]),
    }
    return LegitBatch(out, starts, lengths, expected_txns=lam.sum(axis=0) * P_TXN)


def _slot(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    return (rng.random(len(counts)) * counts).astype(np.int64)


def session_of(pop: Population, rng: np.random.Generator, account: np.ndarray) -> dict[str, np.ndarray]:
    """Device, IP, country and channel of an account's own session (sometimes travelling)."""
    market = pop.country[account].copy()
    travel = rng.random(len(account)) < P_TRAVEL
    market[travel] = rng.integers(0, len(MARKETS), size=int(travel.sum()))
    channel = pop.channel[account].copy()
    other = rng.random(len(account)) < P_OTHER_CHANNEL
    channel[other] = rng.integers(0, len(CHANNELS), size=int(other.sum()))
    return {
        "device": pop.device(account, _slot(rng, pop.n_devices[account])),
        "ip": pop.ip(account, _slot(rng, pop.n_ips[account])),
        "country": pop.country_code(market),
        "channel": pop.code("channel", channel),
    }


def _transactions(pop: Population, rng: np.random.Generator, account: np.ndarray, t: np.ndarray) -> frames.Frame:
    n = len(account)
    kind = rng.choice(4, size=n, p=TXN_TYPE_P)
    no_friend = (kind == 1) & (pop.n_friends[account] == 0)
    kind[no_friend] = 0
    amount = np.round(np.exp(rng.normal(pop.amount_mu[account] + TXN_AMOUNT_SHIFT[kind], 0.8)), 2)
    amount = np.clip(amount, 0.01, 1_000_000.0)
    merchant = pop.pool.offset["merchant"] + rng.choice(pop.n_merchants, size=n, p=pop.merchant_weights)
    friend_slot = np.minimum(_slot(rng, np.maximum(pop.n_friends[account], 1)), MAX_FRIENDS - 1)
    friend = pop.account_id(pop.friends[account, friend_slot])
    counterparty = np.select([kind == 0, kind == 1], [merchant, friend], -1)
    card = pop.card(account, _slot(rng, pop.n_cards[account]))
    payment_method = np.where((kind == 0) | (kind == 2), card, -1)
    address = np.where(kind == 3, pop.address(account), -1)
    return frames.build("txn", n, t=t, account=account, txn_type=pop.code("txn_type", kind), amount=amount,
                        currency=pop.currency_code(pop.country[account]), counterparty=counterparty,
                        payment_method=payment_method, withdrawal_address=address, **session_of(pop, rng, account))


def _logins(pop: Population, rng: np.random.Generator, account: np.ndarray, t: np.ndarray) -> frames.Frame:
    success = rng.random(len(account)) >= P_FAILED_LOGIN
    return frames.build("login", len(account), t=t, account=account, success=success,
                        two_fa_used=success & pop.two_fa[account], **session_of(pop, rng, account))


def _changes(pop: Population, rng: np.random.Generator, account: np.ndarray, t: np.ndarray) -> frames.Frame:
    n = len(account)
    change = rng.choice(4, size=n, p=[0.45, 0.15, 0.2, 0.2])
    spare = pop.pool.offset["spare_address"] + rng.integers(0, pop.n_spare_addresses, size=n)
    where = session_of(pop, rng, account)
    del where["channel"]
    return frames.build("change", n, t=t, account=account, change_type=pop.code("change_type", change),
                        new_withdrawal_address=np.where(change == 3, spare, -1), **where)
