# mend-repro: environment, workflow and checks.
#
#   make            build the venv (same as `make install`)
#   make reproduce  run the whole DAG (tiny profile, the Snakefile's default)
#   make test       pytest       make lint   ruff check + format check
#   make dryrun     snakemake -n make lock   regenerate envs/requirements.lock
#
# The venv is built only from the hash-pinned lock; its stamp is rebuilt whenever the lock or pyproject.toml
# changes. Override VENV=path to build elsewhere.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# Where the CPU torch wheel pinned by the lock lies (also in this machine's pip find-links).
WHEELS ?= /opt/wheels
TORCH_CPU_SHA256 := 6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b
LOCK := envs/requirements.lock
PROFILE ?= tiny
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
LOCK_ARGS ?=

.DEFAULT_GOAL := install
.PHONY: install reproduce test lint format lock dryrun clean-results clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: $(LOCK) pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: neither python3.11 nor python3 found on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --require-hashes --find-links $(WHEELS) -r $(LOCK)
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $@

reproduce: $(VENV)/.installed
	$(BIN)/snakemake --cores all $(SNAKEMAKE_ARGS)

dryrun: $(VENV)/.installed
	$(BIN)/snakemake -n $(SNAKEMAKE_ARGS)

test: $(VENV)/.installed
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The one lock command (also quoted in envs/requirements.in). `make lock LOCK_ARGS=--upgrade` moves every pin
# to the newest release the ranges in requirements.in allow. The checks after it make sure the lock pins the
# CPU torch wheel from $(WHEELS) (its sha256) and no CUDA packages.
lock: | $(VENV)/.installed
	$(BIN)/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	    --no-emit-find-links --find-links $(WHEELS) $(LOCK_ARGS) -o $(LOCK) envs/requirements.in
	@grep -q '^torch==2.13.0+cpu ' $(LOCK) && grep -q 'sha256:$(TORCH_CPU_SHA256)' $(LOCK) \
	    || { echo "error: $(LOCK) does not pin torch==2.13.0+cpu with the CPU wheel's sha256;" \
	              "is $(WHEELS)/torch-2.13.0+cpu-*.whl there?" >&2; exit 1; }
	@! grep -qiE '^(nvidia-|triton)' $(LOCK) \
	    || { echo "error: $(LOCK) pins CUDA packages (nvidia-*/triton)" >&2; exit 1; }
	@echo "$(LOCK): torch 2.13.0+cpu from $(WHEELS), no CUDA packages"

# Raw outputs and generated tables/figures of one profile (PROFILE=tiny by default; PROFILE=paper for the other).
clean-results:
	rm -rf results/$(PROFILE) figures/$(PROFILE)

clean-venv:
	rm -rf $(VENV)
