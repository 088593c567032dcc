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

# Debian packages some tests need: chromium renders the bench HTML report, openssh-server's sshd
# serves the ssh:// bench tests. Installed when root with apt-get; otherwise only named (those tests skip).
SYSTEM_DEPS := chromium openssh-server

.PHONY: system-deps
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: installing$$missing"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; } \
	    || echo "system-deps: could not install$$missing; the tests that need them will skip"; \
	else \
	  echo "system-deps: missing$$missing; install them (Debian/Ubuntu: sudo apt-get install$$missing), or the tests that need them skip"; \
	fi

test: setup system-deps
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not integration"

lint: setup
	$(VENV)/bin/ruff check edgekit tests benchmarks

clean:
	rm -rf build .pytest_cache
