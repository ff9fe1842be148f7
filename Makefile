# Notiflow: `make run` shows the pipeline end to end, `make test` runs the whole suite.
# Both build .venv from scratch when it is missing; nothing needs AWS or Docker.
# Dependencies come from the hashed lock (requirements/dev.txt, exported from uv.lock by `make lock`).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export CDK_DISABLE_VERSION_CHECK := true
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install test lint style types format run up synth package bench cost chaos clean lock chromium console screenshot

LOCKED := requirements/dev.txt

# Every file pip installs is checked against the lock's hashes; the project itself is then installed
# in place with the setuptools the lock brought (no build isolation, so nothing unhashed is fetched).
$(STAMP): pyproject.toml $(LOCKED)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCKED)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

lint: style types

# ruff, and the hashed exports in requirements/ still match uv.lock and pyproject.toml.
style: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m infrastructure.lock --check

# mypy with the pydantic plugin (configured in pyproject.toml).
types: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Browser tests drive Debian's Chromium; install it when it is missing (CI runs as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: $(STAMP) lint chromium
	$(VENV)/bin/pytest

run: $(STAMP)
	$(VENV)/bin/notiflow demo $(ARGS)

# The demo, then everything kept up with the console opened in the browser (Ctrl-C stops it).
console: $(STAMP)
	$(VENV)/bin/notiflow demo --open

up: $(STAMP)
	$(VENV)/bin/notiflow local up $(ARGS)

# Regenerate docs/console.png from a fresh embedded stack.
screenshot: $(STAMP) chromium
	$(PY) scripts/screenshot_console.py

# Template, cdk-nag and cfn-lint, fully offline (the Lambda asset is the unbundled source).
synth: $(STAMP)
	$(PY) -m infrastructure.synth --skip-bundling

# The same with the deployable asset: pip fetches Lambda-platform wheels from the package index.
package: $(STAMP)
	$(PY) -m infrastructure.synth

bench: $(STAMP)
	$(PY) bench/throughput.py

# The realistic mix in both delivery modes on the embedded stack, priced per million notifications
# (infrastructure/prices.json); ARGS go to bench/cost_mix.py, e.g. make cost ARGS="--count 400".
cost: $(STAMP)
	$(PY) bench/cost_mix.py $(ARGS)

# 2,000 notifications under receiver and platform faults, reconciled across four sources; exits 1 if an
# invariant breaks (bench/chaos.py). ARGS go to the script: make chaos ARGS="--mode standard --count 500".
chaos: $(STAMP)
	$(PY) bench/chaos.py $(ARGS)

# Re-resolve uv.lock after changing pyproject.toml and export requirements/<group>.txt, hashed.
# ARGS go to `uv lock`: make lock ARGS=--upgrade, make lock ARGS="--upgrade-package moto".
lock: $(STAMP)
	$(PY) -m infrastructure.lock $(ARGS)

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
