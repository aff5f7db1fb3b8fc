# xmargin — two commands matter: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVNET_STAMP := devnet/node_modules/.xmargin-installed
CYCLES ?=
PYTEST_ARGS ?=
# The suite runs on every core (pytest-xdist), a test module per worker at a time (--dist loadfile).
PYTEST_WORKERS ?= auto
# Python caches compiled modules (.pyc) as it imports them. uv installs none, and a machine that sets
# PYTHONDONTWRITEBYTECODE (the workplace machines do) then recompiles every module in every process: importing the CLI took 1.75 s CPU
# against 0.56 s with the cache (3.1x, same load), paid by every `xmargin` the suite starts and every xdist worker.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: all venv devnet-install browser demo test lint typecheck unit bench reliability clean

all: venv

venv: $(STAMP)

# uv installs the project into the venv (12 s on a warm cache against 65 s for pip's resolve-and-compile on 2 cores);
# pip does it where uv cannot be had.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv 2>/dev/null; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'; \
	else \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'; \
	fi
	@touch $(STAMP)

# npm packages (anvil, Aave's deploy package, hardhat, solc-js), the contracts compiled from npm sources and the
# deployed chain state every devnet starts from (cached outside the checkout).
devnet-install: $(STAMP)
	$(BIN)/python -m devnet

# Debian's Chromium for the dashboard's browser test (Playwright drives it; nothing is downloaded by Playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (apt) for the browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "could not install chromium (not Debian, or no root/sudo): the browser tests will fail until it is installed"; }

# The demo installs the devnet itself (npm, solc-js, first deployment), showing each stage as it runs.
demo: $(STAMP)
	$(BIN)/xmargin demo $(if $(CYCLES),--cycles $(CYCLES),)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not chain" $(PYTEST_ARGS)

# The devnet's install and first deployment (npm, solc-js, hardhat: about a minute on a new machine, mostly one core
# and the disk) run in the background from the start: beside the lint and the type check, then beside the suite,
# whose modules that use no chain go first while it runs (tests/conftest.py); a module that needs the devnet waits
# for it (a file lock). Its output is shown when the suite ends, and a failed deployment fails the target.
DEVNET_LOG := $(VENV)/devnet-install.log
test: $(STAMP) browser
	@echo "installing and deploying the devnet in the background (log: $(DEVNET_LOG))"
	@$(BIN)/python -m devnet >$(DEVNET_LOG) 2>&1 & devnet=$$!; \
	$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck; checks=$$?; \
	tests=1; if [ $$checks = 0 ]; then $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS); tests=$$?; fi; \
	wait $$devnet; deployed=$$?; \
	echo "--- devnet install (python -m devnet, exit $$deployed):"; cat $(DEVNET_LOG); \
	[ $$checks = 0 ] && [ $$tests = 0 ] && [ $$deployed = 0 ]

bench: devnet-install
	$(BIN)/python benchmarks/bench_sync.py
	$(BIN)/python benchmarks/bench_risk.py
	$(BIN)/python benchmarks/bench_api.py

# Reruns every fault scenario (3 seeds) and a kill -9 campaign; rewrites docs/reliability.md.
reliability: devnet-install
	$(BIN)/python docs/reliability.py

clean:
	rm -rf $(VENV) devnet/node_modules devnet/vendor devnet/cache devnet/artifacts devnet/deployments
