"""FeatureStoreHook: how Airflow tasks reach riskpipe's offline and online feature stores.

Embedded mode (``offline_backend=duckdb``): a DuckDB file, opened per call and waiting for
the single-writer lock (tasks run as parallel processes). Production
(``offline_backend=snowflake``): the offline store is built on a connection made by the
Snowflake provider's ``SnowflakeHook``, so the warehouse credentials are an Airflow connection
(``AIRFLOW_CONN_RISKPIPE_SNOWFLAKE`` in the embedded env, a secrets backend in production).
The online store is Redis, from the riskpipe settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from riskpipe.settings import Settings, get_settings

if TYPE_CHECKING:
    from features.offline.base import OfflineStore
    from features.online.redis_store import RedisOnlineStore


class FeatureStoreHook(BaseHook):
    """Opens the feature stores for one task; callers use ``with hook.offline() as store``."""

    conn_name_attr = "snowflake_conn_id"
    default_conn_name = "riskpipe_snowflake"
    conn_type = "snowflake"
    hook_name = "riskpipe feature store"

    def __init__(self, snowflake_conn_id: str | None = None, settings: Settings | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or get_settings()
        self.snowflake_conn_id = snowflake_conn_id or self.settings.airflow_snowflake_conn_id

    def get_conn(self) -> OfflineStore:
        """A new offline store; the caller closes it (prefer ``offline()``)."""
        if self.settings.offline_backend == "snowflake":
            from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

            from features.offline_access import hook_paramstyle_qmark, snowflake_store_from_connection

            with hook_paramstyle_qmark():
                connection = SnowflakeHook(snowflake_conn_id=self.snowflake_conn_id).get_conn()
            return snowflake_store_from_connection(connection)
        from features.offline_access import open_offline_store

        return open_offline_store(self.settings)

    @contextmanager
    def offline(self) -> Iterator[OfflineStore]:
        """Open, yield, close: never hold the store across tasks (DuckDB has one writer)."""
        store = self.get_conn()
        try:
            yield store
        finally:
            store.close()

    def online(self) -> RedisOnlineStore:
        from features.online.redis_store import RedisOnlineStore

        return RedisOnlineStore.from_settings(self.settings)
