# The two commands of the README. Both set the machine up first (idempotent).
.PHONY: setup up test lint down bench demo

setup:
	@bash scripts/bootstrap.sh

up: setup
	.venv/bin/riskpipe up

down:
	.venv/bin/riskpipe down

demo:
	.venv/bin/riskpipe demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: setup
	.venv/bin/python -m benchmarks
