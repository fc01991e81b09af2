# secretd: `make demo` runs the main job end to end, `make test` passes the tests.
# Both install what they need first (Debian packages and a .venv) via tools/setup-host.sh.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test lint pytest fuzz demo bench clean

setup:
	@tools/setup-host.sh

lint: setup
	$(BIN)/ruff check secretd tests bench
	$(BIN)/mypy secretd

pytest: setup
	$(BIN)/pytest -q

test: lint pytest

# The fuzz suites with many more examples than make test gives them.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -m fuzz

demo: setup
	@PATH="$(CURDIR)/$(BIN):$$PATH" tools/demo.sh

# secretd against unshare, runc, podman, docker and a Swarm service, interleaved in one
# run (as root, ~4 minutes), the daemon under load, an open+read through the FUSE mount
# against a tmpfs (bench/fuse.py) and upstream reads for 200 concurrent runs
# (bench/single_flight.py): writes bench/REPORT.md and bench/report.png. The scripts in
# bench/ also run alone for a closer look at one peer. Then `secretd redact` on 100 MB with
# 50 secrets against cat and sed (~10 s).
bench: setup
	$(BIN)/python bench/report.py
	$(BIN)/python bench/redact.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
