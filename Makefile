# Every target creates the virtual environment it needs: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The tests mostly wait on loopback latencies, so four workers share two cores well.
WORKERS ?= 4
# The workers and the ~40 processes the tests start reuse compiled bytecode (__pycache__, ignored by
# git) even where PYTHONDONTWRITEBYTECODE is set: else each compiles the package and rewrites the
# tests' asserts again, 2 to 3 s of CPU apiece.
export PYTHONDONTWRITEBYTECODE :=

# The tests' files go to memory when it has room (/dev/shm with 1 GB free), else to the usual temp
# folder: reports are fsynced before they replace the old ones, and on a busy virtual disk those
# waits were seconds of make test-fast.
TEST_TMPDIR := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 1048576 {print "/dev/shm"}')
IN_TEST_TMPDIR := $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR))

.PHONY: demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "bulk_enable needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $@

# The demo profile has 5 counters this agency cannot change, so the run exits 1 ("some failed") by
# design: that is the demo working, not make failing.
demo: $(STAMP)
	$(BIN)/bulk-enable demo || [ $$? -eq 1 ]

# tests/conftest.py puts the long tests (processes, big inputs, fuzzers) first; handing them out two
# at a time spreads them over the workers, so none ends the run alone on a long one.
test: $(STAMP) lint
	$(IN_TEST_TMPDIR) $(BIN)/python -m pytest -q -n $(WORKERS) --maxschedchunk 2

# For quick edits: only the tests that start no process, no server (a sandbox, a test server) and no
# fuzzer (hypothesis), nor the few big inputs (slow). tests/conftest.py fails any unmarked test that
# starts a process or a server. All CPU: one worker per core.
test-fast: $(STAMP)
	$(IN_TEST_TMPDIR) $(BIN)/python -m pytest -q -n auto -m "not (e2e or process or sandbox or server or hypothesis or slow)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache
