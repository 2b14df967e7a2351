# Waterline: two commands do all the set-up. `make run` serves, `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WATERLINE_HOST ?= 127.0.0.1
WATERLINE_PORT ?= 8000
# The demo tunes the virtual fabric on its own; production starts in `propose`.
WATERLINE_TUNER_MODE ?= auto
WATERLINE_TUNER_INTERVAL_S ?= 30
WATERLINE_TUNER_WINDOW_S ?= 60
WATERLINE_TUNER_VERIFY_S ?= 60
PYTEST_ARGS ?=

.PHONY: run test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/waterline migrate
	$(BIN)/waterline bootstrap
	WATERLINE_TUNER_MODE=$(WATERLINE_TUNER_MODE) \
	WATERLINE_TUNER_INTERVAL_S=$(WATERLINE_TUNER_INTERVAL_S) \
	WATERLINE_TUNER_WINDOW_S=$(WATERLINE_TUNER_WINDOW_S) \
	WATERLINE_TUNER_VERIFY_S=$(WATERLINE_TUNER_VERIFY_S) \
	$(BIN)/waterline serve --host $(WATERLINE_HOST) --port $(WATERLINE_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
