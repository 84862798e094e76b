# coredump: developer targets. `make demo` crashes a sample and explains its core;
# `make test` runs the whole suite; `make bench` compares speed with gdb.
PYTHON ?= python3

.PHONY: all samples test lint bench demo clean screenshots

all: samples

samples:
	$(MAKE) -s -C c_samples -j2

test: samples
	$(PYTHON) -m pytest -q

lint:
	ruff check .

bench: samples
	$(PYTHON) scripts/bench.py

# Build the null-pointer sample, let it crash in a scratch directory with cores enabled,
# and explain the core it left.
demo: samples
	@rm -rf demo && mkdir -p demo
	@cd demo && (ulimit -c unlimited; ../c_samples/build/O0/segv >/dev/null 2>&1 || true)
	@core=$$(ls demo/core* 2>/dev/null | head -n1); \
	if [ -z "$$core" ]; then echo "no core was written: run 'coredump doctor' to see why" >&2; exit 1; fi; \
	coredump analyze "$$core"

clean:
	$(MAKE) -C c_samples clean
	rm -rf demo coredump-artifacts bench.json

# README's screenshots, rendered by headless Chromium from a sample crash.
screenshots: samples
	$(PYTHON) scripts/screenshots.py
