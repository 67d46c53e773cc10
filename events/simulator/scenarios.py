"""Fraud scenarios, vectorized over incidents: each returns frames with ground truth attached.

- **ATO** (account takeover): failed logins (often), a login from a fraudster device in a new
  country, security changes (password/email/2FA, then a new withdrawal address), then
  withdrawals draining the account to that address.
- **P2P scam**: a scam receiver (mule account) collects transfers from many first-time
  senders; the victims use their own devices, so only the graph and amounts give it away.
- **Stolen payment details**: card-testing bursts of small payments with stolen cards from a
  fraudster device shared across accounts, then a few large payments.

The regime sets the tactics (burst speed, drain speed, how often logins fail first), so
drift shows up in the features the models rely on. ``EXPECTED_TXNS`` lets the engine turn a
target fraud-transaction rate into an incident rate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from events.simulator import frames
from events.simulator.config import LabelDelay, Regime
from events.simulator.legit import US_PER_HOUR, session_of
from events.simulator.population import FRAUD_TYPE_CODES, MARKETS, Population

US = 1_000_000
Frames = dict[str, frames.Frame]


def sample_label_delays(rng: np.random.Generator, n: int, cfg: LabelDelay) -> np.ndarray:
    """Delay until each fraud is reported, in microseconds; -1 = never reported."""
    hours = np.exp(rng.normal(np.log(cfg.median_hours), cfg.sigma, size=n))
    hours = np.clip(hours, cfg.min_hours, cfg.max_days * 24)
    delays = (hours * US_PER_HOUR).astype(np.int64)
    delays[rng.random(n) < cfg.never_rate] = -1
    return delays


def _grouped_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group (groups are consecutive runs of ``counts`` rows)."""
    total = np.cumsum(values)
    group = np.repeat(np.arange(len(counts)), counts)
    first = (np.cumsum(counts) - counts)[group]
    return total - total[first] + values[first]


def _lognormal_us(rng: np.random.Generator, median_s: float, sigma: float, n: int) -> np.ndarray:
    return (np.exp(rng.normal(np.log(median_s), sigma, size=n)) * US).astype(np.int64)


def _exp_us(rng: np.random.Generator, mean_s: float, n: int) -> np.ndarray:
    return (rng.exponential(mean_s, size=n) * US).astype(np.int64) + 1


class Truth:
    """Ground-truth columns for one scenario's rows."""

    def __init__(self, fraud_type: str, regime: int, incident: np.ndarray) -> None:
        self.code = FRAUD_TYPE_CODES.index(fraud_type)
        self.regime = regime
        self.incident = incident

    def cols(self, per_incident: np.ndarray) -> dict[str, np.ndarray | int]:
        return {"fraud_type": self.code, "regime": self.regime, "incident": np.repeat(self.incident, per_incident)}


def ato(pop: Population, rng: np.random.Generator, start: np.ndarray, regime: Regime, truth: Truth) -> Frames:
    n = len(start)
    victim = rng.integers(0, pop.n, size=n)
    device = pop.pool.offset["fraud_device"] + rng.integers(0, pop.n_fraud_devices, size=n)
    ip = pop.pool.offset["fraud_ip"] + rng.integers(0, pop.n_fraud_ips, size=n)
    market = (pop.country[victim] + rng.integers(1, len(MARKETS), size=n)) % len(MARKETS)
    country = pop.country_code(market)
    address = pop.pool.offset["fraud_address"] + rng.integers(0, pop.n_fraud_addresses, size=n)
    channel = pop.code("channel", rng.choice([0, 3], size=n, p=[0.8, 0.2]))
    ones = np.ones(n, dtype=np.int64)

    n_fail = np.where(rng.random(n) < regime.ato_failed_login_rate, rng.integers(1, 6, size=n), 0)
    fail_gap = _exp_us(rng, 20.0, int(n_fail.sum()))
    fail_t = np.repeat(start, n_fail) + _grouped_cumsum(fail_gap, n_fail)
    fail_total = np.bincount(np.repeat(np.arange(n), n_fail), weights=fail_gap, minlength=n).astype(np.int64)
    login_t = start + fail_total + _exp_us(rng, 60.0, n)
    logins = frames.concat_kind("login", [
        frames.build("login", len(fail_t), t=fail_t, account=np.repeat(victim, n_fail), success=False,
                     two_fa_used=False, device=np.repeat(device, n_fail), ip=np.repeat(ip, n_fail),
                     country=np.repeat(country, n_fail), channel=np.repeat(channel, n_fail), **truth.cols(n_fail)),
        frames.build("login", n, t=login_t, account=victim, success=True, two_fa_used=rng.random(n) < 0.1,
                     device=device, ip=ip, country=country, channel=channel, **truth.cols(ones)),
    ])

    security = rng.random(n) < 0.6
    sec_t = login_t + _exp_us(rng, 180.0, n)
    addr_t = np.where(security, sec_t, login_t) + _exp_us(rng, 120.0, n)
    sec = security.astype(np.int64)
    changes = frames.concat_kind("change", [
        frames.build("change", int(sec.sum()), t=sec_t[security], account=victim[security],
                     change_type=pop.code("change_type", rng.choice(3, size=int(sec.sum()), p=[0.5, 0.3, 0.2])),
                     device=device[security], ip=ip[security], country=country[security],
                     new_withdrawal_address=-1, **truth.cols(sec)),
        frames.build("change", n, t=addr_t, account=victim, change_type=pop.code("change_type", 3), device=device,
                     ip=ip, country=country, new_withdrawal_address=address, **truth.cols(ones)),
    ])

    n_drain = rng.integers(1, 5, size=n)
    rows = int(n_drain.sum())
    gaps = _lognormal_us(rng, regime.ato_drain_interval_s, 0.5, rows)
    drain_t = np.repeat(addr_t, n_drain) + _grouped_cumsum(gaps, n_drain)
    owner = np.repeat(victim, n_drain)
    amount = np.round(np.exp(pop.amount_mu[owner] + 1.5 + rng.normal(0, 0.3, size=rows)), 2)
    txns = frames.build(
        "txn", rows, t=drain_t, account=owner, txn_type=pop.code("txn_type", 3), amount=amount,
        currency=pop.currency_code(pop.country[owner]), counterparty=-1, payment_method=-1,
        withdrawal_address=np.repeat(address, n_drain), device=np.repeat(device, n_drain),
        ip=np.repeat(ip, n_drain), country=np.repeat(country, n_drain), channel=np.repeat(channel, n_drain),
        **truth.cols(n_drain))
    return {"txn": txns, "login": logins, "change": changes}


def p2p_scam(pop: Population, rng: np.random.Generator, start: np.ndarray, regime: Regime, truth: Truth) -> Frames:
    n = len(start)
    lo, hi = regime.scam_victims_per_receiver
    receiver = pop.scam_receivers[rng.integers(0, len(pop.scam_receivers), size=n)]
    n_victims = rng.integers(lo, hi + 1, size=n)
    duration = rng.uniform(6, 48, size=n) * US_PER_HOUR
    victims = int(n_victims.sum())
    victim = rng.integers(0, pop.n, size=victims)
    first_t = np.repeat(start, n_victims) + (rng.random(victims) * np.repeat(duration, n_victims)).astype(np.int64)
    repeat = rng.random(victims) < 0.3
    t = np.concatenate([first_t, first_t[repeat] + _exp_us(rng, 7200.0, int(repeat.sum()))])
    sender = np.concatenate([victim, victim[repeat]])
    to = pop.account_id(np.concatenate([np.repeat(receiver, n_victims), np.repeat(receiver, n_victims)[repeat]]))
    incident = np.repeat(truth.incident, n_victims)
    rows = len(t)
    amount = np.round(np.exp(pop.amount_mu[sender] + 1.0 + rng.normal(0, 0.5, size=rows)), 2)

    txns = frames.build(
        "txn", rows, t=t, account=sender, txn_type=pop.code("txn_type", 1), amount=amount,
        currency=pop.currency_code(pop.country[sender]), counterparty=to, payment_method=-1, withdrawal_address=-1,
        fraud_type=truth.code, regime=truth.regime, incident=np.concatenate([incident, incident[repeat]]),
        **session_of(pop, rng, sender))
    return {"txn": txns}


def stolen_payment(pop: Population, rng: np.random.Generator, start: np.ndarray, regime: Regime,
                   truth: Truth) -> Frames:
    n = len(start)
    tester = pop.card_testers[rng.integers(0, len(pop.card_testers), size=n)]
    shared = max(3, pop.n_fraud_devices // 5)  # a few devices serve many accounts: a fraud-ring signal
    device = pop.pool.offset["fraud_device"] + rng.integers(0, shared, size=n)
    ip = pop.pool.offset["fraud_ip"] + rng.integers(0, pop.n_fraud_ips, size=n)
    n_cards = rng.integers(1, 4, size=n)
    cards = pop.pool.offset["stolen_card"] + rng.integers(0, pop.n_stolen_cards, size=(n, 3))
    lo, hi = regime.card_tests_per_incident
    n_test = rng.integers(lo, hi + 1, size=n)
    n_big = rng.integers(1, 4, size=n)
    per = n_test + n_big
    rows = int(per.sum())
    inc = np.repeat(np.arange(n), per)
    pos = np.arange(rows) - (np.cumsum(per) - per)[inc]
    is_test = pos < n_test[inc]
    gap = np.where(is_test, _lognormal_us(rng, regime.card_test_interval_s, 0.4, rows), _exp_us(rng, 600.0, rows))
    first_big = pos == n_test[inc]
    gap[first_big] += _exp_us(rng, 1800.0, int(first_big.sum()))
    t = start[inc] + _grouped_cumsum(gap, per)
    amount = np.where(is_test, np.round(rng.uniform(0.5, 5.0, size=rows), 2),
                      np.round(np.exp(rng.normal(np.log(600.0), 0.5, size=rows)), 2))
    card = cards[inc, (rng.random(rows) * n_cards[inc]).astype(np.int64)]
    merchant = pop.pool.offset["merchant"] + rng.integers(0, pop.n_merchants, size=rows)
    account = tester[inc]
    txns = frames.build(
        "txn", rows, t=t, account=account, txn_type=pop.code("txn_type", 0), amount=amount,
        currency=pop.currency_code(pop.country[account]), counterparty=merchant, payment_method=card,
        withdrawal_address=-1, device=device[inc], ip=ip[inc], country=pop.country_code(pop.country[account]),
        channel=pop.code("channel", 0), **truth.cols(per))
    return {"txn": txns}


Scenario = Callable[[Population, np.random.Generator, np.ndarray, Regime, Truth], Frames]
SCENARIOS: dict[str, Scenario] = {"ato": ato, "p2p_scam": p2p_scam, "stolen_payment": stolen_payment}


def expected_txns(fraud_type: str, regime: Regime) -> float:
    """Mean fraudulent transactions one incident produces under ``regime`` (matches the code above)."""
    if fraud_type == "ato":
        return 2.5
    if fraud_type == "p2p_scam":
        lo, hi = regime.scam_victims_per_receiver
        return (lo + hi) / 2 * 1.3
    lo, hi = regime.card_tests_per_incident
    return (lo + hi) / 2 + 2.0
