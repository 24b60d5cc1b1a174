# Entry points for users and CI. Everything installs into .venv with uv,
# which is itself installed with pip when the machine lacks it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv
STAMP := $(VENV)/.installed
ARGS ?=

export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test lint typecheck pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --locked --python "$$(command -v $(PYTHON))"
	@touch $@

run: install
	$(BIN)/bourse serve $(ARGS)

lint: install
	$(BIN)/ruff check src tests testing
	$(BIN)/ruff format --check src tests testing

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/pytest tests/benchmarks --benchmark-enable --benchmark-only $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks
