"""BackfillOperator: recompute feature groups for one day (map it over days with ``.expand(day=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from plugins.feature_store_hook import FeatureStoreHook


class BackfillOperator(BaseOperator):
    """Runs ``features.backfill.backfill_day``: delete-and-rewrite of each group's day (idempotent)."""

    template_fields = ("group_names", "day", "dry_run")
    ui_color = "#e6ecf7"

    def __init__(self, *, group_names: Sequence[str], day: str, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_names = group_names
        self.day = day
        self.dry_run = dry_run

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from features.backfill import backfill_day

        with FeatureStoreHook().offline() as store:
            return backfill_day(store, list(self.group_names), str(self.day), bool(self.dry_run))
