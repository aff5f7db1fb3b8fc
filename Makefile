# xmargin — two commands matter: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVNET_STAMP := devnet/node_modules/.xmargin-installed
CYCLES ?=
PYTEST_ARGS ?=

.PHONY: all venv devnet-install demo test lint typecheck unit bench clean

all: venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# npm packages (anvil, Aave's deploy package, hardhat, solc-js) and the contracts compiled from npm sources.
devnet-install: $(STAMP)
	$(BIN)/python -m devnet

demo: devnet-install
	$(BIN)/xmargin demo $(if $(CYCLES),--cycles $(CYCLES),)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not chain" $(PYTEST_ARGS)

test: devnet-install lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: devnet-install
	$(BIN)/python benchmarks/bench_sync.py
	$(BIN)/python benchmarks/bench_risk.py

clean:
	rm -rf $(VENV) devnet/node_modules devnet/vendor devnet/cache devnet/artifacts devnet/deployments
