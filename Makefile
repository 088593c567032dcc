# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.edgekit-installed
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test test-fast lint clean

setup: $(STAMP)

# The pinned set in converters/constraints.txt installs together on Python 3.11;
# onnx2tf and tf-keras pin an old stack, so they go in with --no-deps.
$(STAMP): pyproject.toml converters/constraints.txt converters/nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c converters/constraints.txt -e '.[all,dev]'
	$(PIP) install --quiet --no-deps -r converters/nodeps.txt
	touch $@

demo: setup
	$(VENV)/bin/edgekit convert --recipe models/minilm-l6.toml --out build/demo/minilm-l6

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration"

lint: setup
	$(VENV)/bin/ruff check edgekit tests benchmarks

clean:
	rm -rf build .pytest_cache
