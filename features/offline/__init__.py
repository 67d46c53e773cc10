"""Offline feature store: ``get_offline_store(settings)`` picks the backend from settings.

``settings.offline_backend`` is ``duckdb`` (embedded default, file at ``settings.duckdb_path``)
or ``snowflake`` (credentials from ``RISKPIPE_SNOWFLAKE_*``). Callers only see ``OfflineStore``.
"""

from __future__ import annotations

from features.offline.base import OfflineStore, group_schema
from features.offline.duckdb_store import DuckDBOfflineStore
from riskpipe.settings import Settings, get_settings

__all__ = ["DuckDBOfflineStore", "OfflineStore", "get_offline_store", "group_schema"]


def get_offline_store(settings: Settings | None = None) -> OfflineStore:
    """The configured backend; the Snowflake import is lazy so DuckDB users never load the connector."""
    settings = settings or get_settings()
    if settings.offline_backend == "snowflake":
        from features.offline.snowflake_store import SnowflakeOfflineStore

        return SnowflakeOfflineStore.from_settings(settings)
    return DuckDBOfflineStore(settings.duckdb_path)
