# spane_py — needs only Python 3.11+ and make.
#
#   make demo     run the bundled workflow end to end (zero setup: embedded Redis)
#   make demo-postgres
#                 the same on the PostgreSQL store (DATABASE_URL, else an embedded server
#                 in .spane/pg)
#   make test     run the whole test suite (without the soak)
#   make soak     the long soak: 10,000 executions while workers are killed (CI runs it too)
#   make lint     ruff check + mypy --strict
#   make bench    run the benchmarks (benchmarks/run_all.sh)
#
# The virtualenv .venv is created on first use and reinstalled when pyproject.toml changes.
# Variables: PYTHON (the interpreter that creates .venv), PYTEST_ARGS, TEST_WORKERS (pytest-xdist
# processes for make test, 3; 0: none), DEMO_ARGS, PIP_FLAGS.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= -q
PYTEST_ARGS ?=
TEST_WORKERS ?= 3
DEMO_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo demo-postgres test soak lint format bench clean distclean

comma := ,

help:
	@echo "make demo    run the bundled demo workflow (no setup needed)"
	@echo "make demo-postgres   the same on PostgreSQL (DATABASE_URL, else embedded)"
	@echo "make test    run the test suite (REDIS_URL / DATABASE_URL used when set)"
	@echo "make soak    the long soak (workers killed under load; bounded: 20 minutes)"
	@echo "make lint    ruff check + mypy spane_py"
	@echo "make format  ruff format + ruff check --fix"
	@echo "make bench   run benchmarks/run_all.sh"
	@echo "make clean   remove caches and build files (distclean: also .venv)"

# One stamp per extra: a stamp older than pyproject.toml means "install again". The venv is
# (re)created first when it is missing or its interpreter no longer runs.
define install
	@if ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
			echo "spane_py needs Python 3.11 or newer; '$(PYTHON)' is:" \
				"$$($(PYTHON) --version 2>&1 || echo missing)." \
				"Try: make PYTHON=python3.12 ..." >&2; exit 1; }; \
		echo "creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
		rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) || { \
			echo "'$(PYTHON) -m venv' failed: on Debian/Ubuntu install python3-venv" >&2; \
			exit 1; }; \
		$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip; \
	fi
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[$(1)]'
endef

$(VENV)/.installed-embedded: pyproject.toml
	$(call install,embedded)
	@touch $@

$(VENV)/.installed-postgres: pyproject.toml
	$(call install,postgres$(comma)embedded)
	@touch $@ $(VENV)/.installed-embedded

$(VENV)/.installed-dev: pyproject.toml
	$(call install,dev)
	@touch $@ $(VENV)/.installed-embedded $(VENV)/.installed-postgres

demo: $(VENV)/.installed-embedded
	$(BIN)/spane demo $(DEMO_ARGS)

demo-postgres: $(VENV)/.installed-postgres
	$(BIN)/spane demo --store postgres $(DEMO_ARGS)

# The tests wait on servers and subprocesses far more than they compute: three pytest-xdist
# workers fit two cores (TEST_WORKERS=0: one process). The tests that kill worker processes
# share one of them (tests/conftest.py).
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# tests/chaos/test_soak.py, left out of `make test` (tests marked soak need --soak).
soak: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --soak -m soak -s $(PYTEST_ARGS) tests/chaos/test_soak.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy spane_py

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	@if [ -f benchmarks/run_all.sh ]; then \
		PATH="$(CURDIR)/$(BIN):$$PATH" bash benchmarks/run_all.sh; \
	else \
		echo "no benchmarks yet (benchmarks/run_all.sh is missing)"; \
	fi

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
