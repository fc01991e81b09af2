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

bench: setup
	$(BIN)/python bench/run_sandbox.py
	$(BIN)/python bench/daemon.py
	$(BIN)/python bench/run_image.py
	$(BIN)/python bench/run_docker.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
