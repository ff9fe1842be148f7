# Notiflow: `make run` shows the pipeline end to end, `make test` runs the whole suite.
# Both build .venv from scratch when it is missing; nothing needs AWS or Docker.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export CDK_DISABLE_VERSION_CHECK := true
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: install test lint format run up synth package bench clean lock chromium console screenshot

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,infra]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

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

# Re-resolve the locked set after changing pyproject.toml ranges.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev,infra]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v "^-e" > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
