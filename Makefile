# The two commands of the README. Both create .venv and install the project on first use
# (and again whenever pyproject.toml changes).
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3

CHECKOV := .venv-checkov/.installed

.PHONY: plan test lint bench bench-mutants tools help

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# checkov lives in its own venv: its pins conflict with the Pulumi SDK's.
$(CHECKOV): tests/requirements-checkov.txt
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	@.venv-checkov/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-checkov.txt
	@touch $(CHECKOV)

## make plan [ARGS="--env prod --json plan.json"]: print the plan of prod (or ARGS)
plan: $(STAMP)
	@$(VENV)/bin/sofacover plan $(ARGS)

## make test: lint, then the whole test suite, then the Worker's tests (Node's runner)
test: $(STAMP) $(CHECKOV) tools lint
	$(VENV)/bin/pytest
	cd workers && node --test

## make tools: the Debian packages the tests drive (installed as root, else the command)
tools:
	@scripts/ensure-tools

## make lint: ruff over the repository
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## make bench: time the offline plan against the import floor (figures in docs/benchmarks.md)
bench: $(STAMP)
	$(PY) bench/plan_timing.py

## make bench-mutants [ARGS="--only ID"]: the hand-written mutation run (bench/mutants.yaml,
## about 20 minutes; figures in docs/benchmarks.md); a benchmark, never part of `make test`
bench-mutants: $(STAMP)
	$(PY) bench/mutants.py $(ARGS)

## make help: this list (`make` alone only creates .venv and installs the project)
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
