"""The riskpipe Airflow plugin: the feature-groups page in the API server and a nav entry to it.

Airflow 3 plugins extend the FastAPI API server (``fastapi_apps``) and the React UI
(``external_views``: a nav item that shows ``href`` in an iframe). Hooks and operators need no
registration in Airflow 3: DAGs import them from ``plugins.*``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from plugins.feature_groups_page import app as feature_groups_app

URL_PREFIX = "/riskpipe/feature-groups"


class RiskpipePlugin(AirflowPlugin):
    name = "riskpipe"
    fastapi_apps = [{"app": feature_groups_app, "url_prefix": URL_PREFIX, "name": "riskpipe feature groups"}]
    external_views = [{
        "name": "Feature groups",
        "href": URL_PREFIX.lstrip("/") + "/",  # relative, as the UI resolves it against its base URL
        "destination": "nav",
        "category": "browse",
        "url_route": "feature-groups",
    }]
