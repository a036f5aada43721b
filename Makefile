# FundWatch — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the console's browser dependencies (ECharts), pinned in services/console/package-lock.json
CONSOLE       := services/console
CONSOLE_STAMP := $(CONSOLE)/node_modules/.installed-$(shell cksum $(CONSOLE)/package-lock.json | cut -d' ' -f1)

.PHONY: help setup run test test-unit test-integration test-e2e test-deps bench lint clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: $(STAMP) $(CONSOLE_STAMP) ## create .venv and install FundWatch with its pinned dependencies, and the console's
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

$(CONSOLE_STAMP): $(CONSOLE)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "installing nodejs and npm (Debian packages) for the console's ECharts"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	cd $(CONSOLE) && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(CONSOLE)/node_modules/.installed-* && touch $@

run: setup ## the embedded stack with a simulated province on http://127.0.0.1:8080 (Ctrl-C stops)
	$(BIN)/fundwatch run

test-deps: ## install what the tests need from Debian packages (a ClickHouse server, promtool, Chromium) when absent
	@command -v clickhouse-server >/dev/null 2>&1 || test -x /usr/sbin/clickhouse-server || { \
		echo "installing clickhouse-server (Debian package) for the integration tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends clickhouse-server >/dev/null; }
	@command -v promtool >/dev/null 2>&1 || test -x /usr/bin/promtool || { \
		echo "installing prometheus (Debian package, for promtool) to check the monitoring configuration"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@test -x /usr/bin/chromium || { \
		echo "installing chromium (Debian package) for the console's browser tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

test: setup test-deps ## the whole suite: unit, integration (real Tansu, ClickHouse server, chDB), e2e
	$(BIN)/python -m pytest tests

test-unit: setup ## unit tests only (no servers)
	$(BIN)/python -m pytest tests/unit

test-integration: setup test-deps ## integration tests only
	$(BIN)/python -m pytest tests/integration

test-e2e: setup test-deps ## end-to-end tests only (starts `fundwatch run`)
	$(BIN)/python -m pytest tests/e2e

bench: setup ## the benchmark suite (see docs/benchmarks.md)
	$(BIN)/fundwatch bench

lint: setup ## ruff over the code and tests
	$(BIN)/ruff check services streams models schemas tests

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) var
