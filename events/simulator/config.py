"""What a simulation run looks like: population, rates, fraud mix, drift regimes, label delays.

Everything that shapes the output is in ``SimulationConfig`` (pydantic, so a regime file or
CLI flag that is out of range fails with a message naming the field). The defaults are a
demo that runs in seconds: 5,000 accounts, 7 days, 0.8% fraudulent transactions, three
regimes that shift the scenario mix and the fraudsters' tactics.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from riskpipe.errors import UsageError

FRAUD_TYPES: tuple[str, ...] = ("ato", "p2p_scam", "stolen_payment")
FraudTypeName = Literal["ato", "p2p_scam", "stolen_payment"]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Regime(BaseModel):
    """One drift regime: from ``start_day`` on, fraud follows this mix and these tactics.

    ``mix`` is the share of *fraudulent transactions* by fraud type (normalized). Tactics are
    the knobs real fraudsters turn when a velocity rule starts catching them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    start_day: float = Field(ge=0.0, description="Days after the simulation start when the regime begins.")
    mix: dict[FraudTypeName, Annotated[float, Field(ge=0.0)]]
    card_test_interval_s: float = Field(
        8.0, gt=0, description="Median gap between card-testing payments (slow it to dodge velocity features).")
    card_tests_per_incident: tuple[int, int] = Field((6, 14), description="Min/max small test payments.")
    ato_drain_interval_s: float = Field(600.0, gt=0, description="Median gap between ATO drain withdrawals.")
    ato_failed_login_rate: Probability = Field(0.7, description="Share of ATOs preceded by failed logins.")
    scam_victims_per_receiver: tuple[int, int] = Field((8, 30), description="First-time senders per scam account.")

    @model_validator(mode="after")
    def _check(self) -> Regime:
        if sum(self.mix.values()) <= 0:
            raise ValueError(f"regime {self.name!r}: mix must have a positive weight")
        for name in ("card_tests_per_incident", "scam_victims_per_receiver"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"regime {self.name!r}: {name} must be 1 <= min <= max")
        return self

    def share(self, fraud_type: str) -> float:
        return self.mix.get(fraud_type, 0.0) / sum(self.mix.values())  # type: ignore[call-overload]


class LabelDelay(BaseModel):
    """Chargebacks and reports arrive late: log-normal delay (median, sigma), clipped; some never."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median_hours: float = Field(48.0, gt=0)
    sigma: float = Field(1.2, ge=0, description="Log-normal shape; 1.2 spreads hours to weeks.")
    min_hours: float = Field(1.0, ge=0)
    max_days: float = Field(60.0, gt=0)
    never_rate: Probability = Field(0.1, description="Share of fraud that is never reported.")

    @model_validator(mode="after")
    def _check(self) -> LabelDelay:
        if self.min_hours > self.max_days * 24:
            raise ValueError("label delay: min_hours exceeds max_days")
        return self


def default_regimes(days: float, count: int = 3) -> list[Regime]:
    """Built-in drift story, evenly spread over the run: baseline, scam wave, evasive fraud."""
    presets = [
        Regime(name="baseline", start_day=0.0, mix={"ato": 0.4, "p2p_scam": 0.25, "stolen_payment": 0.35}),
        Regime(name="scam_wave", start_day=0.0, mix={"ato": 0.2, "p2p_scam": 0.6, "stolen_payment": 0.2},
               scam_victims_per_receiver=(20, 60)),
        Regime(name="evasive", start_day=0.0, mix={"ato": 0.3, "p2p_scam": 0.2, "stolen_payment": 0.5},
               card_test_interval_s=900.0, card_tests_per_incident=(3, 6), ato_drain_interval_s=4 * 3600.0,
               ato_failed_login_rate=0.2),
    ]
    if not 1 <= count <= len(presets):
        raise UsageError(f"--regimes must be between 1 and {len(presets)} (or use --regime-file)")
    return [r.model_copy(update={"start_day": i * days / count}) for i, r in enumerate(presets[:count])]


class SimulationConfig(BaseModel):
    """A whole run. ``start`` anchors event time (history); live mode anchors at the wall clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(7, ge=0)
    accounts: int = Field(5_000, ge=10, le=10_000_000)
    days: float = Field(7.0, gt=0, le=3650)
    start: datetime = Field(default_factory=lambda: datetime.now(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0) - timedelta(days=7))
    rate: float = Field(12.0, gt=0, le=10_000, description="Mean legitimate events per account per day.")
    fraud_rate: float = Field(0.008, ge=0.0, lt=0.5, description="Share of transactions that are fraud.")
    regimes: list[Regime] = Field(default_factory=lambda: default_regimes(7.0))
    label_delay: LabelDelay = Field(default_factory=LabelDelay)

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if self.start.tzinfo is None:
            object.__setattr__(self, "start", self.start.replace(tzinfo=UTC))
        if not self.regimes:
            raise ValueError("at least one regime is required")
        starts = [r.start_day for r in self.regimes]
        if starts != sorted(starts) or starts[0] != 0:
            raise ValueError("regimes must be ordered by start_day and the first must start at day 0")
        return self

    def regime_at(self, day: float) -> tuple[int, Regime]:
        """Index and regime in force ``day`` days after the start."""
        index = 0
        for i, regime in enumerate(self.regimes):
            if regime.start_day <= day:
                index = i
        return index, self.regimes[index]


def load_regimes(path: Path) -> list[Regime]:
    """Regimes from a JSON file: a list of ``Regime`` objects (see ``riskpipe simulate --help``)."""
    import json

    from pydantic import TypeAdapter, ValidationError

    try:
        raw = json.loads(path.read_text())
        return TypeAdapter(list[Regime]).validate_python(raw)
    except FileNotFoundError as exc:
        raise UsageError(f"--regime-file: {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"--regime-file: {path} is not JSON: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"--regime-file: {path}: {loc}: {err['msg']}") from exc
