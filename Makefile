# The two commands of the README. Both set the machine up first (idempotent).
.PHONY: setup up test lint down bench

setup:
	@bash scripts/bootstrap.sh

up: setup
	.venv/bin/riskpipe up

down:
	.venv/bin/riskpipe down

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: setup
	.venv/bin/python -m benchmarks
