"""`riskpipe demo`: the pipeline's story on the running stack, step by step, in plain output.

1. score a customer's normal card payment;
2. an account takeover of the same customer: a login from a new device abroad and a password change
   go to Kafka, the stream workers turn them into features in Redis, then a large withdrawal from
   that device is scored: the score jumps and the reason codes say why;
3. a drift regime (a scam wave: many more frauds, first-time P2P senders) is injected as live
   traffic scored through the endpoint, so ``predictions.log`` records the shift;
4. the ``monitoring`` DAG runs through Airflow's REST API, detects the drift and triggers
   ``retraining``; the retrained model is promoted and the endpoint serves it.

Nothing here is scripted output: every number comes from the running services.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import typer

from riskpipe.errors import UsageError
from riskpipe.settings import Settings

Say = Callable[[str], None]


# ---- the customer ------------------------------------------------------------------------------------------------


def customer(settings: Settings, index: int = 0) -> dict[str, Any]:
    """Account ``index`` of the simulated population: its usual device, IP, country, currency, card, amount."""
    from events.simulator.population import build_population

    pop = build_population(settings.pipeline_accounts, settings.pipeline_seed)
    account = np.array([index % pop.n])
    slot = np.zeros(1, dtype=np.int64)
    market = pop.country[account]
    ids = pop.pool.take(np.concatenate([pop.account_id(account), pop.device(account, slot), pop.ip(account, slot),
                                        pop.card(account, slot), pop.country_code(market), pop.currency_code(market)]))
    account_id, device, ip, card, country, currency = (v.as_py() for v in ids)
    return {"account_id": account_id, "device_id": device, "ip": ip, "payment_method_id": card, "country": country,
            "currency": currency, "typical_amount": round(float(np.exp(pop.amount_mu[account][0])), 2)}


def normal_payment(who: dict[str, Any]) -> dict[str, Any]:
    """A card payment of the usual size from the usual device, IP and country."""
    return {"account_id": who["account_id"], "txn_type": "card_payment", "amount": who["typical_amount"],
            "currency": who["currency"], "payment_method_id": who["payment_method_id"], "device_id": who["device_id"],
            "ip": who["ip"], "country": who["country"], "event_id": f"demo-{uuid.uuid4().hex[:12]}"}


def takeover_events(who: dict[str, Any], now: datetime) -> tuple[list[Any], dict[str, Any]]:
    """The attacker's login and password change (to Kafka), and the withdrawal to score after them."""
    from events.contracts import AccountChange, Login

    device, ip, country = f"dev-{uuid.uuid4().hex[:12]}", "185.220.101.7", "NG" if who["country"] != "NG" else "BR"
    login = Login(event_id=f"demo-{uuid.uuid4().hex[:12]}", event_time=now - timedelta(seconds=90),
                  account_id=who["account_id"], success=True, device_id=device, ip=ip, country=country,
                  two_fa_used=False, channel="web")
    change = AccountChange(event_id=f"demo-{uuid.uuid4().hex[:12]}", event_time=now - timedelta(seconds=45),
                           account_id=who["account_id"], change_type="password", device_id=device, ip=ip,
                           country=country)
    withdrawal = {"account_id": who["account_id"], "txn_type": "withdrawal",
                  "amount": round(max(40 * who["typical_amount"], 2_000.0), 2), "currency": who["currency"],
                  "device_id": device, "ip": ip, "country": country, "event_id": f"demo-{uuid.uuid4().hex[:12]}",
                  "last_password_change_time": change.event_time.isoformat(),
                  "device_first_seen_time": login.event_time.isoformat()}
    return [login, change], withdrawal


def wait_for_features(settings: Settings, account_id: str, group_name: str, since: datetime,
                      timeout_s: float = 30.0) -> float | None:
    """Seconds until the online store holds ``group_name`` values for the account at or after ``since``."""
    from features.definitions.catalog import get_group
    from features.online.redis_store import RedisOnlineStore

    store, group, started = RedisOnlineStore.from_settings(settings), get_group(group_name), time.monotonic()
    while time.monotonic() - started < timeout_s:
        values = store.read({"account_id": account_id}, [group])[group.name]
        if values.event_time is not None and values.event_time >= since:
            return time.monotonic() - started
        time.sleep(0.25)
    return None


# ---- scoring -----------------------------------------------------------------------------------------------------


def score(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/score", json=body)
    if response.status_code != 200:
        raise UsageError(f"scoring failed ({response.status_code}): {response.text[:200]}")
    return dict(response.json())


def served_model(client: httpx.Client) -> str | None:
    response = client.get("/model")
    return str(response.json()["tag"]) if response.status_code == 200 else None


def describe_score(result: dict[str, Any]) -> str:
    reasons = ", ".join(f"{r['feature']}={_fmt(r['value'])} ({r['contribution']:+.2f})" for r in result["reasons"])
    return f"score {result['score']:.3f} -> {result['decision'].upper()}   top reasons: {reasons or 'none'}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---- drift -------------------------------------------------------------------------------------------------------


def drift_config(settings: Settings) -> Any:
    """The population in a scam wave: 30x the fraud share, mostly P2P scams with many first-time senders."""
    from events.simulator.config import Regime, SimulationConfig

    wave = Regime(name="demo_scam_wave", start_day=0.0, mix={"ato": 0.15, "p2p_scam": 0.7, "stolen_payment": 0.15},
                  scam_victims_per_receiver=(20, 60), card_test_interval_s=900.0, ato_failed_login_rate=0.1)
    return SimulationConfig(seed=settings.pipeline_seed, accounts=settings.pipeline_accounts, days=1.0,
                            start=datetime.now(UTC), fraud_rate=0.25, regimes=[wave])


def inject_drift(settings: Settings, seconds: float, rate: float, history: Any) -> dict[str, int]:
    """Live traffic of the drift regime for ``seconds``, every transaction scored; returns the counters."""
    from events.live_scoring import GatewayScorer
    from events.producer import EventProducer
    from events.simulator.engine import Simulator
    from events.simulator.live import run_live

    api_key = settings.serving_api_key.get_secret_value() if settings.serving_api_key else None
    gateway = GatewayScorer(settings.serving_url, api_key=api_key, history=history)
    try:
        report = run_live(Simulator(drift_config(settings), live_rate=rate), EventProducer(settings.bootstrap_servers),
                          duration_s=seconds, before_produce=gateway)
    finally:
        gateway.close()
    return {"produced": sum(report.produced.values()), **gateway.counters}


# ---- the story ---------------------------------------------------------------------------------------------------


def require_stack(settings: Settings) -> None:
    """The demo drives the running stack: one line telling how to start it otherwise."""
    from riskpipe.stack.services import REGISTRY

    for name in ("serving", "airflow", "broker"):  # HTTP checks first: a Kafka client logs noise when none answers
        if not REGISTRY[name].health(settings):
            raise UsageError(f"the stack is not running ({name} is not healthy): start it with `make up`")


def run_demo(settings: Settings, *, say: Say = print, drift_seconds: float = 60.0, drift_rate: float = 80.0,
             timeout_s: float = 900.0, wait_for_retraining: bool = True) -> dict[str, Any]:
    """The whole story; returns what it observed (the end-to-end test asserts on it).

    ``wait_for_retraining=False`` stops once monitoring has triggered the retraining run (CI on two
    cores cannot afford the full retraining inside its time budget).
    """
    from events.live_scoring import load_history
    from events.producer import EventProducer
    from monitoring.run import latest_result
    from riskpipe.airflow_api import AirflowClient

    require_stack(settings)
    observed: dict[str, Any] = {}
    with httpx.Client(base_url=settings.serving_url, timeout=10,
                      headers={"x-api-key": settings.serving_api_key.get_secret_value()}
                      if settings.serving_api_key else {}) as api, AirflowClient.from_settings(settings) as airflow:
        observed["model_before"] = served_model(api)
        if observed["model_before"] is None:
            raise UsageError("no production model is served yet: let `make up` finish (its train stage) first")
        who, history = customer(settings), load_history(settings)
        say(f"== 1. A normal payment  (serving {observed['model_before']})")
        say(f"   {who['account_id']} pays {who['typical_amount']} {who['currency']} by card from their usual device "
            f"{who['device_id']} in {who['country']}")
        observed["normal"] = score(api, history.enrich(normal_payment(who)))
        say("   " + describe_score(observed["normal"]))

        say("== 2. An account takeover of the same customer")
        events, withdrawal = takeover_events(who, datetime.now(UTC))
        producer = EventProducer(settings.bootstrap_servers)
        producer.produce_many(events)
        producer.flush()
        say(f"   to Kafka: a login from new device {withdrawal['device_id']} in {withdrawal['country']} without 2FA, "
            "then a password change")
        waited = wait_for_features(settings, who["account_id"], "account_security_changes", events[-1].event_time)
        say(f"   stream features in Redis after {waited:.1f}s" if waited is not None
            else "   stream features did not reach Redis within 30s (is stream-compute healthy? `riskpipe status`)")
        say(f"   then a withdrawal of {withdrawal['amount']} {withdrawal['currency']} from that device")
        observed["takeover"] = score(api, withdrawal)
        say("   " + describe_score(observed["takeover"]))

        say(f"== 3. Drift: a scam wave as live traffic for {drift_seconds:.0f}s (~{drift_rate:g} events/s, every "
            "transaction scored)")
        observed["drift_traffic"] = inject_drift(settings, drift_seconds, drift_rate, history)
        say(f"   {observed['drift_traffic']}")

        say("== 4. Monitoring through Airflow: the `monitoring` DAG")
        started = datetime.now(UTC)
        airflow.wait_for_dag("monitoring")
        run_id = airflow.trigger("monitoring")
        say(f"   triggered run {run_id} (an hourly run still in progress goes first: max one active run)")
        run = airflow.wait("monitoring", run_id, timeout_s=timeout_s)
        latest = latest_result(settings) or {}
        observed["monitoring"] = {"state": run["state"], "alarms": latest.get("alarms", []),
                                  "report_dir": latest.get("report_dir")}
        say(f"   {run['state']}; report {latest.get('report_dir')}")
        for alarm in latest.get("alarms", []):
            say(f"   ALARM {alarm['check']}: {alarm['message']}")
        retrain = _retraining_after(airflow, started)
        if retrain is None:
            say("   no retraining was triggered (no drift alarm crossed its threshold): see the report above")
            return observed
        observed["retraining"] = {"run_id": retrain["dag_run_id"], "state": retrain["state"],
                                  "conf": retrain.get("conf")}
        say(f"== 5. Retraining triggered by monitoring: run {retrain['dag_run_id']} ({retrain['state']})")
        if not wait_for_retraining:
            return observed
        done = airflow.wait("retraining", retrain["dag_run_id"], timeout_s=timeout_s)
        observed["retraining"]["state"] = done["state"]
        say(f"   retraining {done['state']}")
        observed["model_after"] = _wait_new_model(api, observed["model_before"], timeout_s=60)
        if observed["model_after"] != observed["model_before"]:
            say(f"== 6. The endpoint now serves {observed['model_after']} (was {observed['model_before']})")
            observed["takeover_after"] = score(api, {**withdrawal, "event_id": f"demo-{uuid.uuid4().hex[:12]}"})
            say("   the takeover withdrawal again: " + describe_score(observed["takeover_after"]))
        else:
            say(f"   the endpoint still serves {observed['model_before']}: the champion/challenger gate kept it "
                "(see `riskpipe models list` and the retraining run's `gate` task log)")
    return observed


def _retraining_after(airflow: Any, since: datetime) -> dict[str, Any] | None:
    """The retraining run monitoring triggered (queued after ``since``), if any."""
    for run in airflow.runs("retraining", limit=5):
        queued = run.get("queued_at") or run.get("run_after")
        if queued and datetime.fromisoformat(queued.replace("Z", "+00:00")) >= since:
            return dict(run)
    return None


def _wait_new_model(api: httpx.Client, before: str | None, timeout_s: float) -> str | None:
    """Serving polls the production pointer every few seconds: wait for it to report a new tag."""
    deadline = time.monotonic() + timeout_s
    current = served_model(api)
    while current == before and time.monotonic() < deadline:
        time.sleep(1)
        current = served_model(api)
    return current


def demo(
    drift_seconds: float = typer.Option(60.0, min=5, help="How long the drift regime's live traffic runs."),
    drift_rate: float = typer.Option(80.0, min=1, help="Events/s of the drift traffic (each transaction scored)."),
    timeout: float = typer.Option(900.0, min=30, help="Longest wait for the monitoring run, and then for the "
                                                      "retraining run (s)."),
) -> None:
    """Score a normal payment and an account takeover, inject drift, watch monitoring retrain and serve a new model."""
    from riskpipe.settings import get_settings

    run_demo(get_settings(), say=typer.echo, drift_seconds=drift_seconds, drift_rate=drift_rate, timeout_s=timeout)
