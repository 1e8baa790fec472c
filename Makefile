# Quick start: `make run` (storm the embedded reference service) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HDR_JAR := /usr/share/java/hdrhistogram.jar

.PHONY: run test lint typecheck pytest java-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/zg-load run scenarios/high_priority_storm.toml

# The Java HdrHistogram tools read our interval logs in the interop test.
java-deps:
	@if [ ! -f $(HDR_JAR) ] || ! command -v java >/dev/null; then \
	  echo "installing default-jre-headless and libhdrhistogram-java for the interop test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless libhdrhistogram-java >/dev/null; \
	fi

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check zg_load tests $(wildcard benchmarks/*.py)
	$(BIN)/ruff format --check zg_load tests $(wildcard benchmarks/*.py)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev java-deps
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) results .mypy_cache .ruff_cache .pytest_cache
