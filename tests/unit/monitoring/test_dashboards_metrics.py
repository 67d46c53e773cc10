"""Grafana dashboards and the Prometheus config only name metrics and jobs that really exist.

A renamed metric in serving/metrics.py or monitoring/exporter.py fails here instead of leaving an
empty panel in Grafana. Exported names come from the live registries, not from a list in this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import Metric

from monitoring.exporter import PipelineCollector
from riskpipe.settings import REPO_ROOT, Settings
from serving.metrics import ServingMetrics

GRAFANA = REPO_ROOT / "monitoring" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROMETHEUS = yaml.safe_load((REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text())

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "gauge": ("",), "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                 "unless", "inf", "nan"}


def _sample_names(families: list[Metric]) -> set[str]:
    """The series names a family exposes (a counter ``x`` is scraped as ``x_total``)."""
    return {f.name + suffix for f in families for suffix in _SUFFIXES.get(f.type, ("",))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    serving = CollectorRegistry()
    ServingMetrics(serving)
    process = CollectorRegistry()
    ProcessCollector(registry=process)
    pipeline = PipelineCollector(Settings(data_dir=tmp_path_factory.mktemp("riskpipe"))).describe()
    return _sample_names([*serving.collect(), *process.collect(), *pipeline])


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)                     # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                    # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in _PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def _targets(path: Path) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_name_parser_sees_metrics_only() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, endpoint) (rate(a_bucket{status!~"2.."}[5m]))) '
            '/ on (job) b - time()')
    assert metric_names(expr) == {"a_bucket", "b"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_parses_and_uses_the_provisioned_datasource(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids
        assert all(t["datasource"]["uid"] in uids for t in panel["targets"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_metric_is_exported(path: Path, exported: set[str]) -> None:
    used = set().union(*(metric_names(e) for e in _targets(path)))
    assert used, path.name
    assert used <= exported, f"{path.name} queries metrics nobody exports: {sorted(used - exported)}"


def test_dashboards_cover_the_three_areas() -> None:
    assert {p.stem for p in DASHBOARDS} == {"serving", "pipeline", "model"}
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_job_labels_in_queries_are_prometheus_jobs() -> None:
    jobs = {c["job_name"] for c in PROMETHEUS["scrape_configs"]}
    used = {m for p in DASHBOARDS for e in _targets(p) for m in re.findall(r'job="([^"]+)"', e)}
    assert used and used <= jobs
