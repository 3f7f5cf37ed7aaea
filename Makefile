# Two entry points for a new user on a machine with only Python 3.11+, pip, git and make:
#   make demo   install the runtime dependencies, then replay the bundled real QQQ sample
#               through the trading engine
#   make test   install everything (runtime, dev and bench groups), then run the whole test
#               suite (lint, types, tests)
# uv is bootstrapped into .tools/ so nothing is installed outside this folder.

PYTHON ?= python3
UV := .tools/bin/uv
RUN := $(UV) run --locked

.PHONY: demo test lint bench install install-runtime clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

# Everything the tests, linters and benchmarks use (pyproject's default groups: dev, bench).
install: $(UV)
	$(UV) sync --locked

# Only what `ict-trader` itself needs. --inexact leaves the dev tools of an earlier
# `make install` in place, so switching between demo and test does not reinstall them.
install-runtime: $(UV)
	$(UV) sync --locked --no-default-groups --inexact

# --no-sync: a plain `uv run` would first install the default groups the demo does not need.
demo: install-runtime
	$(UV) run --locked --no-sync ict-trader run --fresh --speed 3000 --db demo.db

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

CHROMIUM ?= /usr/bin/chromium

test: lint
	@test -x "$(CHROMIUM)" || { echo "The browser tests need Chromium: sudo apt-get install chromium (Debian/Ubuntu), or set CHROMIUM=/path/to/chromium"; exit 1; }
	ICT_TRADER_CHROMIUM="$(CHROMIUM)" $(RUN) pytest

bench: install
	$(RUN) python benchmarks/bench_signals.py
	$(RUN) python benchmarks/bench_backtest.py
	$(RUN) python benchmarks/bench_before_after.py
	$(RUN) python benchmarks/bench_latency.py

clean:
	rm -rf .tools .venv .mypy_cache .ruff_cache .pytest_cache
