"""`bentoml build` of serving/bentofile.yaml yields a Bento that carries everything the service imports.

The bentofile's `include` globs are easy to get wrong silently (a module left out only fails when
the container starts), so the test builds for real (~10 s; BentoML locks the requirements, which
needs the PyPI index this project's machines have) into a private BENTOML_HOME and checks the
Bento's source tree, entry service and pinned requirements.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from riskpipe.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# Every module the service imports at start-up, directly or through the runtime.
NEEDED = ["serving/service.py", "serving/http_app.py", "serving/scorer.py", "serving/runtime.py",
          "features/definitions/catalog.py", "features/online/redis_store.py", "training/model.py",
          "events/contracts.py", "riskpipe/settings.py"]


def test_bentoml_build_packages_the_scoring_service(tmp_path: Path) -> None:
    home = tmp_path / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run([sys.executable, "-m", "bentoml", "build", "-f", "serving/bentofile.yaml",
                             "--output", "tag", "."],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]

    bentos = [p for p in (home / "bentos" / "fraud_scorer").iterdir() if p.is_dir() and p.name != "latest"]
    assert len(bentos) == 1, bentos
    bento = bentos[0]
    assert bento.name in result.stdout  # --output tag prints the tag it built

    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "serving.service:FraudScorer"
    assert meta["name"] == "fraud_scorer"
    paths = meta["schema"]["paths"]
    assert "/docs" in paths and "/openapi.json" in paths  # the FastAPI app is mounted at "/"

    missing = [p for p in NEEDED if not (bento / "src" / p).is_file()]
    assert not missing, f"modules left out of the Bento: {missing}"
    assert not list((bento / "src").rglob("test_*.py")), "tests must not ship in the Bento"

    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    for pinned in ("xgboost==", "redis==", "fastapi=="):
        assert pinned in requirements, f"{pinned!r} not pinned in the Bento's requirements"
