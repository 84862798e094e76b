# coredump: developer targets. `make demo` crashes a sample and explains its core;
# `make test` runs the whole suite; `make bench` compares speed with gdb.
#
# Everything runs in a virtual environment of our own, .venv, made on first use with the
# project installed editable with its test extras: Debian's python3 is "externally managed"
# (PEP 668) and refuses a plain `pip install`. To use an interpreter you manage yourself,
# with the project already installed in it: make test PYTHON=python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# `install` (`runtime` for the demo) when PYTHON is our venv's; nothing when it is the caller's own.
INSTALL := $(if $(filter $(VENV)/bin/python,$(PYTHON)),install)
RUNTIME := $(if $(INSTALL),runtime)
COREDUMP := $(if $(INSTALL),$(abspath $(VENV))/bin/coredump,coredump)
PIP := $(VENV)/bin/python -m pip install -q --disable-pip-version-check

.PHONY: all install runtime samples test lint bench fuzz demo clean screenshots snapshots

all: samples

# `runtime`: the project and its runtime dependencies only, what a user of `make demo` needs;
# `install`: with the test extras too, for the developer targets.
runtime: $(VENV)/.runtime
install: $(VENV)/.installed

$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PIP) -e '.[test]'
	touch $@

samples:
	$(MAKE) -s -C c_samples -j2

# One pytest-xdist worker per CPU; the session fixtures are per worker (cores, caches, servers)
# and the samples' make holds a lock (tests/cores.py).
test: samples $(INSTALL)
	$(PYTHON) -m pytest -q -n auto

lint: $(INSTALL)
	$(PYTHON) -m ruff check .

bench: samples $(INSTALL)
	@# drgn, the peer bench compares with, where PyPI has a wheel for this machine; once.
	-@$(PYTHON) -c 'import drgn' 2>/dev/null || $(PYTHON) -m pip install -q --disable-pip-version-check drgn 2>/dev/null
	$(PYTHON) scripts/bench.py
	$(PYTHON) scripts/bench_history.py

# A long fuzzing campaign: 5,000 examples for each of the two property tests (10,000 inputs),
# random seed. CI runs the same tests with a fixed seed and 150 examples.
fuzz: samples $(INSTALL)
	COREDUMP_FUZZ_EXAMPLES=5000 $(PYTHON) -m pytest tests/test_fuzz.py -q -p no:cacheprovider

# Run the null-pointer sample under `coredump run` (the CI wrapper) in a scratch directory:
# it crashes, the wrapper explains the crash and writes demo/coredump-artifacts/; then
# explain the stored crash again from its artifact directory, as a support engineer would.
demo: samples $(RUNTIME)
	@rm -rf demo && mkdir -p demo
	@cd demo && { $(COREDUMP) run -- ../c_samples/build/O0/segv; \
		echo "(the step exited with status $$?)"; }
	@crash=$$(ls -d demo/coredump-artifacts/segv-* 2>/dev/null | head -n1); \
	if [ -z "$$crash" ]; then echo "no crash was captured: run 'coredump doctor' to see why" >&2; exit 1; fi; \
	echo; echo "$$ coredump analyze $$crash"; $(COREDUMP) analyze "$$crash"

clean:
	$(MAKE) -C c_samples clean
	rm -rf demo coredump-artifacts bench.json bench_history.json $(VENV)

# README's screenshots, rendered by headless Chromium from a sample crash.
screenshots: samples $(INSTALL)
	$(PYTHON) scripts/screenshots.py

# Regenerate the text/JSON snapshots of tests/snapshots/ after an intended format change.
snapshots: $(INSTALL)
	COREDUMP_UPDATE_SNAPSHOTS=1 $(PYTHON) -m pytest -q tests/test_snapshots.py
