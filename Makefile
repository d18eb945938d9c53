# Two commands a new user needs: `make demo` and `make test`.
# Both set everything up themselves: a virtual env, the Python packages, system Graphviz and
# Chromium (the report's browser test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean .graphviz .chromium

setup: $(STAMP) .graphviz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# System Graphviz renders the diagrams; install it when `dot` is missing.
.graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "sagasim: Graphviz is missing: install it (Debian/Ubuntu: sudo apt-get install graphviz)"; exit 1; \
	  fi; }

# Headless Chromium opens the HTML report in tests/test_report_browser.py; `make test` needs it.
.chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "sagasim: Chromium is missing: install it (Debian/Ubuntu: sudo apt-get install chromium)"; exit 1; \
	  fi; }

demo: setup
	$(BIN)/python -m sagasim.demo out

test: setup .chromium
	$(BIN)/ruff check sagasim tests bench
	$(BIN)/ruff format --check sagasim tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/sim_bench.py
	$(BIN)/python bench/choreography_bench.py
	$(BIN)/python bench/check_bench.py
	$(BIN)/python bench/analyze_bench.py

clean:
	rm -rf out $(VENV)
