"""MaterializeOperator: one scheduled run of a batch feature group (compute, validate, publish online)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from plugins.feature_store_hook import FeatureStoreHook


class MaterializeOperator(BaseOperator):
    """Runs ``features.materialize.run_batch_group`` for the task's data interval.

    The group is named, not passed as an object, so the operator serializes with the DAG and
    the definition is looked up in the catalog when the task runs.
    """

    template_fields = ("group_name",)
    ui_color = "#d9f2e6"

    def __init__(self, *, group_name: str, min_rows: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_name = group_name
        self.min_rows = min_rows

    def execute(self, context: Any) -> dict[str, Any]:
        from features.definitions.catalog import get_group
        from features.materialize import run_batch_group

        hook = FeatureStoreHook()
        group = get_group(self.group_name)
        min_rows = hook.settings.batch_min_rows if self.min_rows is None else self.min_rows
        with hook.offline() as store:
            result = run_batch_group(store, hook.online(), group, context["data_interval_start"],
                                     context["data_interval_end"], min_rows=min_rows)
        return result.to_dict()
