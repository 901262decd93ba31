"""The micro DAG's local run, kept for the SLURM test (tests/test_slurm.py) to compare against.

`make test` runs the micro DAG locally (tests/test_workflow.py's ``micro_run``); `make test-slurm` needs a local run
of the same DAG to compare the cluster's outputs with. On a 2-core machine a second local run is half of the SLURM
test's CPU, so ``micro_run`` stores its finished working copy under build/test-cache/, keyed by the content of
everything the run reads (the workflow, the configs, the package's source, the lock, the micro config) and the
Python, torch and transformers versions; the SLURM test starts from that copy when the key matches and lets
Snakemake redo only what its own config changes. Any other change (a source file, a config key) makes a new key and
the SLURM test runs the whole DAG locally again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "test-cache"
INPUTS = ("Snakefile", "workflow", "profiles", "config", "envs", "src", "tests/fixtures/micro.yaml")


def _files() -> list[Path]:
    out = []
    for item in INPUTS:
        path = ROOT / item
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [p for p in found if "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return out


def key() -> str:
    """A hash of the run's inputs and of the versions of what computes it."""
    import torch
    import transformers

    h = hashlib.sha256(f"{sys.version}|{torch.__version__}|{transformers.__version__}".encode())
    for p in _files():
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def store(workdir: Path, run_key: str) -> None:
    """Keep a finished micro run (its whole working copy, file times included) under ``run_key``, the
    :func:`key` of its inputs when it started; other keys are removed."""
    dest = CACHE / f"micro-{run_key}"
    if dest.exists() or run_key != key():  # an input changed while it ran: keep nothing
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"tmp-{run_key}-{os.getpid()}"
    shutil.copytree(workdir, tmp, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete"))
    for old in CACHE.glob("micro-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(dest)


def fetch(workdir: Path) -> bool:
    """Fill ``workdir`` with the kept run of the current inputs, if there is one."""
    src = CACHE / f"micro-{key()}"
    if not src.is_dir():
        return False
    shutil.copytree(src, workdir, symlinks=True, dirs_exist_ok=True)
    return True
