# mend-repro: environment, workflow and checks.
#
#   make              build the venv (same as `make install`)
#   make reproduce    run the whole DAG (tiny profile, the Snakefile's default)
#   make reproduce-long  the same with four times the training budget (config/tiny-long.yaml)
#   make test         pytest        make lint   ruff check + format check, snakefmt --check
#   make test-slurm   the micro DAG on a throwaway one-node SLURM cluster (as root: installs slurm-wlm, munge)
#   make dryrun       snakemake -n
#   make check-fresh  prove that envs/requirements-pypi.lock resolves from PyPI alone (needs PyPI; not in `make test`)
#   make lock         regenerate envs/requirements.lock (CPU torch), then `make lock-pypi`
#   make lock-pypi    regenerate envs/requirements-pypi.lock (PyPI torch, every platform) and envs/mendrepro.yaml
#
# The venv is built only from a hash-pinned lock by envs/install.py: the CPU-torch lock where the CPU wheel can be
# had (WHEELS=folder, pip's own find-links, or the PyTorch CPU index), else the PyPI-torch lock; TORCH=pypi (or
# cpu-wheels, cpu-index) forces one. Its stamp is rebuilt whenever a lock, pyproject.toml or the installer
# changes. Override VENV=path to build elsewhere, PYTHON=path for the interpreter (Python 3.11).

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
# A folder holding torch-2.13.0+cpu-*.whl (optional for install; `make lock` compiles against it).
WHEELS ?=
LOCK_WHEELS ?= $(or $(WHEELS),/opt/wheels)
TORCH ?= auto
TORCH_CPU_SHA256 := 6746dbcbeb526eb61330b76b41ff1b4eb848951103a892eeb080dfa2b264667b
LOCK := envs/requirements.lock
# The same pins with PyPI's torch 2.13.0, for every platform: the fallback of envs/install.py, the Docker image's
# lock, and the source of the conda environment of the rules' `conda:` directive.
PYPI_LOCK := envs/requirements-pypi.lock
CONDA_ENV := envs/mendrepro.yaml
# uv resolves for every platform (--universal); taken from PATH, else installed into a throwaway venv under build/
# (git- and docker-ignored).
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null)
TOOLS := build/tools
PROFILE ?= tiny
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
# make test's workers (pytest-xdist), each test file on one of them: the micro DAG's file alone is about half the
# suite, so more than two gain little. --durations: the slowest tests are printed, so the suite's time can be
# read off any run.
PYTEST_WORKERS ?= 2
LOCK_ARGS ?=
SNAKE_FILES := Snakefile $(wildcard workflow/rules/*.smk)

.DEFAULT_GOAL := install
.PHONY: install reproduce reproduce-long grid grid-save test lint format lock lock-pypi check-fresh dryrun clean-results \
	clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: $(LOCK) $(PYPI_LOCK) pyproject.toml envs/install.py
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH: install Python 3.11" >&2; exit 1; }
	$(PYTHON) envs/install.py --venv $(VENV) --torch $(TORCH) $(if $(WHEELS),--wheels $(WHEELS))

# Config files and --config values checked first (file:line:column, key paths): Snakemake's own loader reads
# --configfile files before the workflow's checks run, and names no file or line (docs/running.md).
CHECK_CONFIG = $(BIN)/python -m mendrepro.checks --snakemake

reproduce: $(VENV)/.installed
	$(CHECK_CONFIG) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores all $(SNAKEMAKE_ARGS)

# The convergence study (config/tiny-long.yaml): the tiny profile with four times the training budget.
reproduce-long: $(VENV)/.installed
	$(CHECK_CONFIG) --configfile config/tiny.yaml config/tiny-long.yaml $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores all --configfile config/tiny.yaml config/tiny-long.yaml $(SNAKEMAKE_ARGS)

# The lr x c_edit grid (lr_grid): cells the ledger (lr_grid.ledger) holds with the same provenance are copied, the
# rest trained, and the finished cells saved to the ledger (to commit), failed cells or not; after an interrupted
# run, `make grid-save` saves the cells it finished.
GRID_RESULTS ?= results/tiny
GRID_LEDGER ?= config/lr_grid/cells
grid: $(VENV)/.installed
	$(CHECK_CONFIG) $(SNAKEMAKE_ARGS)
	-$(BIN)/snakemake --cores all --keep-going lr_grid $(SNAKEMAKE_ARGS)
	$(BIN)/python -m mendrepro grid-save --results $(GRID_RESULTS) --ledger $(GRID_LEDGER)

grid-save: $(VENV)/.installed
	$(BIN)/python -m mendrepro grid-save --results $(GRID_RESULTS) --ledger $(GRID_LEDGER)

dryrun: $(VENV)/.installed
	$(CHECK_CONFIG) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake -n $(SNAKEMAKE_ARGS)

test: $(VENV)/.installed
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

# The micro DAG on a throwaway one-node SLURM cluster through profiles/slurm (tests/test_slurm.py; the cluster:
# tests/slurm_cluster.py), against a local run; not part of `make test`. As root it first installs slurm-wlm and
# munge with apt-get where they are missing; elsewhere it says what to install.
.PHONY: test-slurm
test-slurm: $(VENV)/.installed
	$(BIN)/python tests/slurm_cluster.py install
	$(BIN)/pytest -q -m slurm tests/test_slurm.py $(PYTEST_ARGS)

# Edit latency, editor training throughput and peak memory against a forward+backward (benchmarks/bench.py):
# writes benchmarks/results/<host>.json and .md and prints the table; not part of `make test`.
# `make bench BENCH_ARGS=--smoke` runs micro models in seconds. Then FT and FT+KL evaluation throughput, one edit
# at a time against 16 side by side, at BERT-base, BART-base and distilGPT-2 size (benchmarks/ft_batch.py; its
# arguments: FT_BATCH_ARGS).
BENCH_ARGS ?=
.PHONY: bench
bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.ft_batch $(FT_BATCH_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check $(SNAKE_FILES)

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt $(SNAKE_FILES)

# The PyPI-only path of a user's machine: a throwaway venv resolves $(PYPI_LOCK) with `pip --isolated` (no pip
# configuration, so no local wheel folder and no extra index), every file pip picks must carry a sha256 the lock
# lists, and envs/install.py, with pip's configuration switched off, must choose that lock.
check-fresh:
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH: install Python 3.11" >&2; exit 1; }
	$(PYTHON) envs/install.py --check-fresh --venv build/fresh

# The one lock command (also quoted in envs/requirements.in): both locks and the conda environment.
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release the ranges in requirements.in allow. The
# checks after it make sure the lock pins the CPU torch wheel from $(LOCK_WHEELS) (its sha256) and no CUDA
# packages; then `make lock-pypi` follows the new pins.
lock: | $(VENV)/.installed
	$(BIN)/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	    --no-emit-find-links --find-links $(LOCK_WHEELS) $(LOCK_ARGS) -o $(LOCK) envs/requirements.in
	@grep -q '^torch==2.13.0+cpu ' $(LOCK) && grep -q 'sha256:$(TORCH_CPU_SHA256)' $(LOCK) \
	    || { echo "error: $(LOCK) does not pin torch==2.13.0+cpu with the CPU wheel's sha256;" \
	              "is $(LOCK_WHEELS)/torch-2.13.0+cpu-*.whl there?" >&2; exit 1; }
	@! grep -qiE '^(nvidia-|triton)' $(LOCK) \
	    || { echo "error: $(LOCK) pins CUDA packages (nvidia-*/triton)" >&2; exit 1; }
	@echo "$(LOCK): torch 2.13.0+cpu from $(LOCK_WHEELS), no CUDA packages"
	$(MAKE) lock-pypi

# The PyPI lock, constrained to the CPU lock's pins (all but torch), resolved for every platform; then the conda
# environments: all the same pins (markers kept), and the light one of the table and figure rules (what pandas,
# matplotlib, seaborn, tabulate, jinja2 and pyarrow need; no torch); then the static checks of tests/test_container.py.
lock-pypi: | $(VENV)/.installed
	@mkdir -p build
	@uv="$(UV)"; if [ -z "$$uv" ]; then \
	    test -x $(TOOLS)/bin/uv || { $(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q uv==$(UV_VERSION); }; \
	    uv=$(TOOLS)/bin/uv; fi; \
	grep -E '^[A-Za-z0-9._-]+==' $(LOCK) | sed 's/ .*//' | grep -v '^torch==' > build/cpu-pins.txt && \
	$$uv pip compile envs/requirements.in --generate-hashes --universal --python-version 3.11 \
	    --constraint build/cpu-pins.txt --custom-compile-command 'make lock-pypi' -o $(PYPI_LOCK)
	$(BIN)/python envs/conda_env.py $(PYPI_LOCK) $(CONDA_ENV)
	$(BIN)/python envs/conda_env.py $(PYPI_LOCK) envs/report.yaml --name mendrepro-report \
	    --roots pandas,numpy,matplotlib,seaborn,tabulate,jinja2,pyarrow
	$(BIN)/python -m pytest -q tests/test_container.py

# Raw outputs and generated tables/figures of one profile (PROFILE=tiny by default; PROFILE=paper for the other).
clean-results:
	rm -rf results/$(PROFILE) figures/$(PROFILE)

clean-venv:
	rm -rf $(VENV)

# The dress rehearsal of the paper profile (docs/running.md): Table 4 at real model sizes on CPU, random weights, a
# few steps (config/rehearsal.yaml), from a mirror staged with no network; then its per-rule estimate for one GPU.
REHEARSAL_MIRROR := build/rehearsal/mirror
.PHONY: stage-rehearsal rehearse gpu-check
stage-rehearsal: $(REHEARSAL_MIRROR)/staged.json

$(REHEARSAL_MIRROR)/staged.json: config/paper.yaml $(wildcard src/mendrepro/rehearsal/*.py) | $(VENV)/.installed
	$(BIN)/python -m mendrepro.rehearsal.stage --config config/paper.yaml --out $(REHEARSAL_MIRROR)

rehearse: $(REHEARSAL_MIRROR)/staged.json
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/snakemake --cores 1 --configfile config/rehearsal.yaml $(SNAKEMAKE_ARGS)
	$(BIN)/python -m mendrepro.rehearsal.estimate --results results/rehearsal --out figures/rehearsal/estimate

# On a GPU machine: the memory probe at the paper's GPU sizes, FT and FT+KL evaluation edits per second one at a
# time and side by side (benchmarks/ft_batch.py --device cuda), and the tiny DAG on the GPU, into one JSON file
# (benchmarks/results/gpu-check-<host>.json). Its own venv with PyPI's CUDA torch, so a CPU venv is left alone.
GPU_VENV ?= build/venv-gpu
GPU_CHECK_ARGS ?=
gpu-check:
	$(MAKE) install VENV=$(GPU_VENV) TORCH=pypi
	$(GPU_VENV)/bin/python -m benchmarks.gpu_check $(GPU_CHECK_ARGS)
