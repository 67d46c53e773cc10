"""The fraud feature set: every feature group the pipeline computes, serves and trains on.

Aimed at the three fraud patterns of the product: account takeover (failed logins, new
devices, security changes, withdrawals to new addresses), P2P scams (counterparties receiving
from many first-time senders) and stolen payment details (velocity, cards shared across
accounts). Feature names are unique across groups so a training set can use them as columns.
"""

from __future__ import annotations

from datetime import timedelta

from features.definitions.entities import ACCOUNT, COUNTERPARTY, DEVICE, IP, PAYMENT_METHOD
from features.definitions.filters import Filter
from features.definitions.groups import Aggregation, Feature, FeatureGroup, SqlFeatureGroup, WindowedFeatureGroup
from features.definitions.sources import ACCOUNT_CHANGES, LOGINS, TRANSACTIONS

M1, M5, H1, H24 = timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1), timedelta(hours=24)
D7, D30 = timedelta(days=7), timedelta(days=30)
OWNER = "risk-features@riskpipe"

P2P = Filter("txn_type", "==", "p2p_transfer")
WITHDRAWAL = Filter("txn_type", "==", "withdrawal")
FAILED = Filter("success", "==", False)
SUCCEEDED = Filter("success", "==", True)


def agg(name: str, function: str, column: str | None, windows: tuple[timedelta, ...], *where: Filter,
        description: str = "") -> Aggregation:
    """Terse constructor so the catalog reads like a table."""
    return Aggregation(name=name, function=function, column=column, windows=windows, where=where,
                       description=description)


ACCOUNT_TXN_VELOCITY = WindowedFeatureGroup(
    name="account_txn_velocity", version=1, entity=ACCOUNT, ttl=H24, owner=OWNER, tags=("velocity", "payments"),
    description="How fast an account moves money: counts and amounts over 1m..24h (card testing, drains).",
    source=TRANSACTIONS,
    aggregations=(
        agg("txn_count", "count", None, (M1, M5, H1, H24), description="transactions"),
        agg("txn_amount_sum", "sum", "amount", (M1, M5, H1, H24), description="total amount"),
        agg("txn_amount_mean", "mean", "amount", (H1, H24), description="mean amount"),
        agg("txn_amount_max", "max", "amount", (H1, H24), description="largest amount"),
        agg("txn_amount_min", "min", "amount", (H24,), description="smallest amount (card testing)"),
        agg("p2p_count", "count", None, (H1, H24), P2P, description="P2P transfers sent"),
        agg("p2p_amount_sum", "sum", "amount", (H1, H24), P2P, description="P2P amount sent"),
        agg("card_payment_count", "count", None, (M5, H1), Filter("txn_type", "==", "card_payment"),
            description="card payments"),
        agg("high_value_txn_count", "count", None, (H24,), Filter("amount", ">=", 1000.0),
            description="transactions of 1000 or more"),
        agg("last_txn_amount", "last", "amount", (H24,), description="amount of the latest transaction"),
        agg("last_txn_type", "last", "txn_type", (H24,), description="type of the latest transaction"),
    ),
)

ACCOUNT_TXN_DIVERSITY = WindowedFeatureGroup(
    name="account_txn_diversity", version=1, entity=ACCOUNT, ttl=D7, owner=OWNER, tags=("diversity", "ato"),
    description="How many distinct devices, IPs, countries and counterparties an account pays from/to.",
    source=TRANSACTIONS,
    aggregations=(
        agg("txn_distinct_devices", "count_distinct", "device_id", (H1, H24, D7)),
        agg("txn_distinct_ips", "count_distinct", "ip", (H1, H24, D7)),
        agg("txn_distinct_countries", "count_distinct", "country", (H24, D7, D30)),
        agg("txn_distinct_counterparties", "count_distinct", "counterparty_id", (H24, D7)),
        agg("txn_distinct_payment_methods", "count_distinct", "payment_method_id", (H24, D7)),
        agg("new_device_txn_count", "count", None, (H24,), Filter("is_new_device", "==", True),
            description="payments from a device not used by this account in the previous 30 days"),
        agg("last_txn_country", "last", "country", (D30,)),
    ),
)

ACCOUNT_LOGIN_SECURITY = WindowedFeatureGroup(
    name="account_login_security", version=1, entity=ACCOUNT, ttl=D7, owner=OWNER, tags=("logins", "ato"),
    description="Login pressure on an account: failures, new devices/IPs, logins without 2FA.",
    source=LOGINS,
    aggregations=(
        agg("failed_login_count", "count", None, (M5, H1, H24), FAILED),
        agg("login_count", "count", None, (H1, H24)),
        agg("failed_login_distinct_ips", "count_distinct", "ip", (H1, H24), FAILED),
        agg("login_distinct_countries", "count_distinct", "country", (H24, D7)),
        agg("new_device_login_count", "count", None, (H24, D7), SUCCEEDED, Filter("is_new_device", "==", True),
            description="successful logins from a device not seen for this account in 30 days"),
        agg("new_ip_login_count", "count", None, (H24,), SUCCEEDED, Filter("is_new_ip", "==", True)),
        agg("no_2fa_login_count", "count", None, (H24,), SUCCEEDED, Filter("two_fa_used", "==", False)),
        agg("last_login_country", "last", "country", (D30,)),
        agg("last_login_success", "last", "success", (H24,)),
    ),
)

ACCOUNT_SECURITY_CHANGES = WindowedFeatureGroup(
    name="account_security_changes", version=1, entity=ACCOUNT, ttl=D30, owner=OWNER, tags=("ato",),
    description="Recent changes to credentials and payout settings (the prelude of a takeover).",
    source=ACCOUNT_CHANGES,
    aggregations=(
        agg("security_change_count", "count", None, (H1, H24, D7)),
        agg("password_change_count", "count", None, (H24, D7), Filter("change_type", "==", "password")),
        agg("twofa_change_count", "count", None, (H24, D7), Filter("change_type", "==", "2fa")),
        agg("email_change_count", "count", None, (D7,), Filter("change_type", "==", "email")),
        agg("withdrawal_address_change_count", "count", None, (H24, D7),
            Filter("change_type", "==", "withdrawal_address")),
        agg("change_distinct_devices", "count_distinct", "device_id", (D7,)),
        agg("last_change_type", "last", "change_type", (D30,)),
    ),
)

ACCOUNT_WITHDRAWALS = WindowedFeatureGroup(
    name="account_withdrawals", version=1, entity=ACCOUNT, ttl=D7, owner=OWNER, tags=("ato", "withdrawals"),
    description="Withdrawals, especially to addresses the account has not used in 90 days.",
    source=TRANSACTIONS,
    aggregations=(
        agg("withdrawal_count", "count", None, (H1, H24), WITHDRAWAL),
        agg("withdrawal_amount_sum", "sum", "amount", (H1, H24, D7), WITHDRAWAL),
        agg("new_address_withdrawal_count", "count", None, (H1, H24, D7), WITHDRAWAL,
            Filter("is_new_withdrawal_address", "==", True)),
        agg("new_address_withdrawal_amount_sum", "sum", "amount", (H24, D7), WITHDRAWAL,
            Filter("is_new_withdrawal_address", "==", True)),
        agg("distinct_withdrawal_addresses", "count_distinct", "withdrawal_address", (D7,), WITHDRAWAL),
    ),
)

PAYMENT_METHOD_SHARING = WindowedFeatureGroup(
    name="payment_method_sharing", version=1, entity=PAYMENT_METHOD, ttl=D7, owner=OWNER,
    tags=("stolen_payment",),
    description="A card used by many accounts or from many countries is likely stolen.",
    source=TRANSACTIONS,
    aggregations=(
        agg("pm_distinct_accounts", "count_distinct", "account_id", (H24, D7, D30)),
        agg("pm_txn_count", "count", None, (H1, H24)),
        agg("pm_amount_sum", "sum", "amount", (H24,)),
        agg("pm_distinct_countries", "count_distinct", "country", (D7,)),
    ),
)

DEVICE_SHARING = WindowedFeatureGroup(
    name="device_sharing", version=1, entity=DEVICE, ttl=D7, owner=OWNER, tags=("ato", "devices"),
    description="One device logging into many accounts is a fraud farm or a credential-stuffing bot.",
    source=LOGINS,
    aggregations=(
        agg("device_distinct_accounts", "count_distinct", "account_id", (H1, H24, D7, D30)),
        agg("device_failed_login_count", "count", None, (H1, H24), FAILED),
        agg("device_distinct_ips", "count_distinct", "ip", (H24,)),
    ),
)

COUNTERPARTY_INBOUND = WindowedFeatureGroup(
    name="counterparty_inbound", version=1, entity=COUNTERPARTY, ttl=D7, owner=OWNER, tags=("p2p_scam",),
    description="Money flowing into a counterparty, and how much of it from first-time senders (scam mule).",
    source=TRANSACTIONS,
    aggregations=(
        agg("inbound_count", "count", None, (H1, H24), P2P),
        agg("inbound_amount_sum", "sum", "amount", (H1, H24), P2P),
        agg("inbound_distinct_senders", "count_distinct", "account_id", (H1, H24, D7), P2P),
        agg("first_time_sender_count", "count", None, (H1, H24, D7), P2P, Filter("is_first_time_sender", "==", True),
            description="transfers from senders who had not paid this counterparty in 90 days"),
        agg("first_time_sender_amount_sum", "sum", "amount", (H24, D7), P2P,
            Filter("is_first_time_sender", "==", True)),
    ),
)

IP_HOURLY = SqlFeatureGroup(
    name="ip_hourly", version=1, entity=IP, ttl=timedelta(hours=2), owner=OWNER, tags=("logins", "hourly"),
    description="Per-IP login activity of the last hour, recomputed every hour (botnets, stuffing).",
    schedule="hourly", lookback=H1,
    sql="""
        SELECT ip,
               COUNT(DISTINCT account_id) AS ip_distinct_accounts_1h,
               COUNT(*) AS ip_login_count_1h,
               SUM(CASE WHEN success THEN 0 ELSE 1 END) AS ip_failed_login_count_1h,
               AVG(CASE WHEN success THEN 0.0 ELSE 1.0 END) AS ip_failed_login_ratio_1h,
               COUNT(DISTINCT country) AS ip_distinct_countries_1h
        FROM events_logins
        WHERE event_time > $lookback_start AND event_time <= $as_of AND ip IS NOT NULL
        GROUP BY ip
    """,
    features=[
        Feature(name="ip_distinct_accounts_1h", dtype="int64"),
        Feature(name="ip_login_count_1h", dtype="int64"),
        Feature(name="ip_failed_login_count_1h", dtype="int64"),
        Feature(name="ip_failed_login_ratio_1h", dtype="float64"),
        Feature(name="ip_distinct_countries_1h", dtype="int64"),
    ],
)

ACCOUNT_PROFILE_NIGHTLY = SqlFeatureGroup(
    name="account_profile_nightly", version=1, entity=ACCOUNT, ttl=timedelta(days=2), owner=OWNER,
    tags=("profile", "nightly"),
    description="30-day spending profile of an account, recomputed nightly (baseline for 'unusual' amounts).",
    schedule="nightly", lookback=D30,
    sql="""
        SELECT account_id,
               COUNT(*) AS profile_txn_count_30d,
               AVG(amount) AS profile_amount_mean_30d,
               STDDEV_SAMP(amount) AS profile_amount_std_30d,
               MAX(amount) AS profile_amount_max_30d,
               COUNT(DISTINCT country) AS profile_distinct_countries_30d,
               AVG(CASE WHEN txn_type = 'p2p_transfer' THEN 1.0 ELSE 0.0 END) AS profile_p2p_share_30d,
               COUNT(DISTINCT CAST(event_time AS DATE)) AS profile_active_days_30d
        FROM events_transactions
        WHERE event_time > $lookback_start AND event_time <= $as_of
        GROUP BY account_id
    """,
    features=[
        Feature(name="profile_txn_count_30d", dtype="int64"),
        Feature(name="profile_amount_mean_30d", dtype="float64"),
        Feature(name="profile_amount_std_30d", dtype="float64"),
        Feature(name="profile_amount_max_30d", dtype="float64"),
        Feature(name="profile_distinct_countries_30d", dtype="int64"),
        Feature(name="profile_p2p_share_30d", dtype="float64"),
        Feature(name="profile_active_days_30d", dtype="int64"),
    ],
)

FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    ACCOUNT_TXN_VELOCITY,
    ACCOUNT_TXN_DIVERSITY,
    ACCOUNT_LOGIN_SECURITY,
    ACCOUNT_SECURITY_CHANGES,
    ACCOUNT_WITHDRAWALS,
    PAYMENT_METHOD_SHARING,
    DEVICE_SHARING,
    COUNTERPARTY_INBOUND,
    IP_HOURLY,
    ACCOUNT_PROFILE_NIGHTLY,
)


def get_group(name: str, groups: tuple[FeatureGroup, ...] = FEATURE_GROUPS) -> FeatureGroup:
    """The group called ``name``; KeyError lists the known names so a typo is easy to spot."""
    for group in groups:
        if group.name == name:
            return group
    raise KeyError(f"unknown feature group {name!r}; known: {', '.join(g.name for g in groups)}")
