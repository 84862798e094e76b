# coredump: developer targets. `make demo` crashes a sample and explains its core;
# `make test` runs the whole suite; `make bench` compares speed with gdb.
PYTHON ?= python3

.PHONY: all samples test lint bench fuzz demo clean screenshots snapshots

all: samples

samples:
	$(MAKE) -s -C c_samples -j2

test: samples
	$(PYTHON) -m pytest -q

lint:
	ruff check .

bench: samples
	$(PYTHON) scripts/bench.py

# A long fuzzing campaign: 5,000 examples for each of the two property tests (10,000 inputs),
# random seed. CI runs the same tests with a fixed seed and 150 examples.
fuzz: samples
	COREDUMP_FUZZ_EXAMPLES=5000 $(PYTHON) -m pytest tests/test_fuzz.py -q -p no:cacheprovider

# Run the null-pointer sample under `coredump run` (the CI wrapper) in a scratch directory:
# it crashes, the wrapper explains the crash and writes demo/coredump-artifacts/; then
# explain the stored crash again from its artifact directory, as a support engineer would.
demo: samples
	@rm -rf demo && mkdir -p demo
	@cd demo && { coredump run -- ../c_samples/build/O0/segv; echo "(the step exited with status $$?)"; }
	@crash=$$(ls -d demo/coredump-artifacts/segv-* 2>/dev/null | head -n1); \
	if [ -z "$$crash" ]; then echo "no crash was captured: run 'coredump doctor' to see why" >&2; exit 1; fi; \
	echo; echo "$$ coredump analyze $$crash"; coredump analyze "$$crash"

clean:
	$(MAKE) -C c_samples clean
	rm -rf demo coredump-artifacts bench.json

# README's screenshots, rendered by headless Chromium from a sample crash.
screenshots: samples
	$(PYTHON) scripts/screenshots.py

# Regenerate the text/JSON snapshots of tests/snapshots/ after an intended format change.
snapshots:
	COREDUMP_UPDATE_SNAPSHOTS=1 $(PYTHON) -m pytest -q tests/test_snapshots.py
