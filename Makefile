# Airlock — every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Extras installed into .venv. CI adds `hf` (torch 2.13.0 CPU, transformers, peft) so the
# transformers runtime's tests run there too; they skip, saying why, where torch is absent.
# The stamp names the extras, so asking for other extras installs them.
EXTRAS ?= dev
STAMP  := $(VENV)/.installed-$(EXTRAS)

# bench-NAME (e.g. bench-ingest) is a pattern rule: make skips pattern rules for .PHONY names.
.PHONY: demo test lint fmt bench clean reliability

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/airlock demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy --strict src

test: lint
	$(BIN)/python -m pytest -W error -q

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench all

bench-%: $(STAMP)
	$(BIN)/python -m bench $*

# The reliability suite (tests/scenarios/reliability) with many trials of each kill -9 scenario,
# then a table: trials, failures, what was lost (`make reliability TRIALS=5` for fewer).
TRIALS ?= 20
reliability: $(STAMP)
	$(BIN)/python -m bench reliability --trials $(TRIALS)

clean:
	rm -rf $(VENV) .airlock .pytest_cache .mypy_cache .ruff_cache
