# alstm — the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
QVENV := .venv-qlib
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test parity bench lint format qlib-venv clean

## setup: create .venv and install alstm with its dev extras through the lock file (idempotent)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt src/alstm/_mkl_intel_path.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[dev]'
	touch $@

## qlib-venv: Qlib (pyqlib==0.9.7), the reference oracle, in its own environment
qlib-venv: $(QVENV)/.installed

$(QVENV)/.installed: requirements/qlib-lock.txt
	test -x $(QVENV)/bin/python || $(PYTHON) -m venv $(QVENV)
	$(QVENV)/bin/python -m pip install -q -r requirements/qlib-lock.txt
	touch $@

## demo: set up, check the embedded synthetic market, then run the Alpha158 ALSTM pipeline on it
DEMO_DATA := data/synth
demo: setup
	$(BIN)/alstm data synth $(DEMO_DATA) --seed 0 --overwrite
	$(BIN)/alstm data check $(DEMO_DATA)
	$(BIN)/alstm run configs/demo.yaml --set data.provider=$(DEMO_DATA) --out runs/demo --overwrite

## test: set up, then run the unit tests (parity tests excluded)
test: setup
	$(BIN)/pytest -q

## parity: compare alstm with Qlib on ../shared/data (Qlib outputs cached in .cache/qlib-ref)
parity: setup qlib-venv
	$(BIN)/pytest -q -m parity tests/parity

## bench: alstm vs Qlib side by side on ../shared/data; each prints a JSON line last
bench: setup qlib-venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) $(QVENV) .cache .pytest_cache .ruff_cache runs mlruns
