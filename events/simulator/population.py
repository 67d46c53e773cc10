"""The simulated customer base: who the accounts are and how each one normally behaves.

Behaviour is per account (home country and currency, 1-3 devices and IPs, cards, a
withdrawal address, a few friends for P2P, a spending level, a preferred channel and a
time-of-day rhythm), because fraud is only visible as a break from *that account's* normal.
All arrays are numpy, indexed by account number; strings live in the shared ``StringPool``.

Fraud infrastructure (fraudster devices and IPs, cash-out addresses, stolen cards, scam
receivers, card-testing accounts) is allocated here too, from the same id sequences as the
legitimate ones, so no id format gives the ground truth away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from events.simulator.pool import StringPool, hex_ids, scrambled

# (country, currency, weight): the platform's markets.
MARKETS: tuple[tuple[str, str, float], ...] = (
    ("US", "USD", 0.22), ("GB", "GBP", 0.10), ("DE", "EUR", 0.09), ("FR", "EUR", 0.07), ("ES", "EUR", 0.05),
    ("BR", "BRL", 0.09), ("TR", "TRY", 0.07), ("NG", "NGN", 0.06), ("IN", "INR", 0.08), ("KR", "KRW", 0.04),
    ("JP", "JPY", 0.04), ("AU", "AUD", 0.03), ("CA", "CAD", 0.04), ("CH", "CHF", 0.02),
)
CURRENCY_CODES: tuple[str, ...] = tuple(sorted({m[1] for m in MARKETS}))
TXN_TYPES = ("card_payment", "p2p_transfer", "deposit", "withdrawal")
CHANNELS = ("web", "ios", "android", "api")
CHANGE_TYPES = ("password", "2fa", "email", "withdrawal_address")
FRAUD_TYPE_CODES = ("ato", "p2p_scam", "stolen_payment")

MAX_DEVICES = 3
MAX_IPS = 3
MAX_CARDS = 2
MAX_FRIENDS = 6


def _ipv4(rng: np.random.Generator, n: int) -> list[str]:
    octets = rng.integers([1, 0, 0, 1], [224, 256, 256, 255], size=(n, 4))
    return [f"{a}.{b}.{c}.{d}" for a, b, c, d in octets.tolist()]


@dataclass
class Population:
    """Per-account behaviour profiles plus the fraud infrastructure, all as numpy arrays."""

    n: int
    pool: StringPool
    country: np.ndarray        # market index per account
    n_devices: np.ndarray
    n_ips: np.ndarray
    n_cards: np.ndarray
    friends: np.ndarray        # (n, MAX_FRIENDS) account indexes
    n_friends: np.ndarray
    amount_mu: np.ndarray      # log of the typical amount
    activity: np.ndarray       # multiplier of the configured rate
    hourly: np.ndarray         # (n, 24) share of a day's activity per UTC hour (rows sum to 1)
    channel: np.ndarray        # preferred channel index
    two_fa: np.ndarray         # bool: 2FA enabled
    scam_receivers: np.ndarray  # account indexes used as P2P scam receivers (mules)
    card_testers: np.ndarray   # account indexes fraudsters use for card testing
    n_merchants: int
    merchant_weights: np.ndarray
    n_fraud_devices: int
    n_fraud_ips: int
    n_fraud_addresses: int
    n_stolen_cards: int
    n_spare_addresses: int

    # -- global pool indexes -------------------------------------------------------------------
    def account_id(self, account: np.ndarray) -> np.ndarray:
        return self.pool.offset["account"] + account

    def device(self, account: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return self.pool.offset["device"] + account * MAX_DEVICES + slot

    def ip(self, account: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return self.pool.offset["ip"] + account * MAX_IPS + slot

    def card(self, account: np.ndarray, slot: np.ndarray) -> np.ndarray:
        return self.pool.offset["card"] + account * MAX_CARDS + slot

    def address(self, account: np.ndarray) -> np.ndarray:
        return self.pool.offset["address"] + account

    def code(self, name: str, index: np.ndarray | int) -> np.ndarray:
        """Global index of a literal code (``name`` is a pool range: txn_type, channel, ...)."""
        return self.pool.offset[name] + np.asarray(index, dtype=np.int64)

    def country_code(self, market: np.ndarray) -> np.ndarray:
        return self.code("country", market)

    def currency_code(self, market: np.ndarray) -> np.ndarray:
        return self.pool.offset["currency"] + _MARKET_CURRENCY[np.asarray(market)]


_MARKET_CURRENCY = np.array([CURRENCY_CODES.index(m[1]) for m in MARKETS], dtype=np.int64)


def _hourly_profiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each account has a peak hour (local evening, shifted by market) and a flat night floor."""
    peak = rng.normal(19.0, 3.0, size=n) % 24
    concentration = rng.uniform(1.0, 3.0, size=n)
    hours = np.arange(24)[None, :]
    w = np.exp(concentration[:, None] * np.cos(2 * np.pi * (hours - peak[:, None]) / 24))
    w = w / w.sum(axis=1, keepdims=True)
    return (0.85 * w + 0.15 / 24).astype(np.float64)


def build_population(n: int, seed: int) -> Population:
    """Deterministic population of ``n`` accounts for ``seed``."""
    rng = np.random.default_rng([seed, 0x504F50])  # "POP"
    pool = StringPool()
    weights = np.array([m[2] for m in MARKETS])
    country = rng.choice(len(MARKETS), size=n, p=weights / weights.sum())

    n_fraud_devices = max(20, n // 200)
    n_fraud_ips = max(50, n // 100)
    n_fraud_addresses = max(50, n // 100)
    n_stolen_cards = max(100, n // 20)
    n_spare_addresses = max(100, n // 10)
    n_merchants = max(100, n // 25)


    pool.add("account", hex_ids("acct-", scrambled(0, n, seed)))
    # legitimate device/ip/card slots first, fraud ones after: same id sequences, so same look
    pool.add("device", hex_ids("dev-", scrambled(0, n * MAX_DEVICES + n_fraud_devices, seed + 1)))
    pool.offset["fraud_device"] = pool.offset["device"] + n * MAX_DEVICES
    ips = _ipv4(rng, n * MAX_IPS + n_fraud_ips)
    pool.add("ip", ips)
    pool.offset["fraud_ip"] = pool.offset["ip"] + n * MAX_IPS
    pool.add("card", hex_ids("pm-", scrambled(0, n * MAX_CARDS + n_stolen_cards, seed + 2)))
    pool.offset["stolen_card"] = pool.offset["card"] + n * MAX_CARDS
    pool.add("address", hex_ids("wa-", scrambled(0, n + n_spare_addresses + n_fraud_addresses, seed + 3)))
    pool.offset["spare_address"] = pool.offset["address"] + n
    pool.offset["fraud_address"] = pool.offset["spare_address"] + n_spare_addresses
    pool.add("merchant", hex_ids("merch-", scrambled(0, n_merchants, seed + 4)))
    pool.add("country", [m[0] for m in MARKETS])
    pool.add("currency", list(CURRENCY_CODES))
    pool.add("txn_type", list(TXN_TYPES))
    pool.add("channel", list(CHANNELS))
    pool.add("change_type", list(CHANGE_TYPES))
    pool.add("fraud_type", list(FRAUD_TYPE_CODES))

    friends = rng.integers(0, n, size=(n, MAX_FRIENDS))
    special = rng.choice(n, size=max(2, n // 500) + max(3, n // 300), replace=False)
    n_receivers = max(2, n // 500)
    merchant_rank = np.arange(1, n_merchants + 1)
    merchant_weights = 1.0 / merchant_rank**1.1
    return Population(
        n=n, pool=pool, country=country,
        n_devices=rng.choice([1, 2, 3], size=n, p=[0.55, 0.35, 0.10]),
        n_ips=rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]),
        n_cards=rng.choice([1, 2], size=n, p=[0.7, 0.3]),
        friends=friends, n_friends=rng.integers(0, MAX_FRIENDS + 1, size=n),
        amount_mu=rng.normal(np.log(35.0), 0.6, size=n),
        activity=rng.gamma(2.0, 0.5, size=n),
        hourly=_hourly_profiles(rng, n),
        channel=rng.choice(len(CHANNELS), size=n, p=[0.35, 0.3, 0.3, 0.05]),
        two_fa=rng.random(n) < 0.45,
        scam_receivers=special[:n_receivers], card_testers=special[n_receivers:],
        n_merchants=n_merchants, merchant_weights=merchant_weights / merchant_weights.sum(),
        n_fraud_devices=n_fraud_devices, n_fraud_ips=n_fraud_ips, n_fraud_addresses=n_fraud_addresses,
        n_stolen_cards=n_stolen_cards, n_spare_addresses=n_spare_addresses,
    )
