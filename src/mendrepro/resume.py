"""Resumable editor training: the loop's full state saved every N steps beside its output, and restored.

A checkpoint is one folder written by ``Accelerator.save_state`` (editor parameters and running normalisation
buffers, optimiser, the RNG states of python, numpy and torch) plus the loop's own state, registered with the
accelerator (step, sampling RNG, the edit sampler's position, validation history, best-so-far and early-stopping
counters), the best-so-far checkpoint file and the fingerprint of the experiment it belongs to. It is written as
``tmp-<step>`` and renamed to ``ckpt-<step>`` when complete, so a killed job leaves either the previous checkpoint
or the new one, never half of one; restarting with the same output resumes from the newest ``ckpt-*``.

Nothing here draws a random number (``getstate``/``get_rng_state`` only read), so a run that saves checkpoints
computes exactly what one that does not computes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# What a checkpoint holds beside Accelerate's own files.
FINGERPRINT = "fingerprint.json"
CKPT = re.compile(r"ckpt-(\d+)")


@dataclass(frozen=True)
class Checkpointing:
    """Where the resumable state of one training job lives, how often it is saved, and whose it is."""

    dir: Path  # <out>.resume, beside the output
    every: int  # steps between checkpoints; 0 never saves (nor resumes)
    fingerprint: dict  # {"experiment": sha256, "inputs": sha256}: a state with another one is not resumed

    @classmethod
    def beside(cls, out: Path, every: int, fingerprint: dict) -> Checkpointing:
        return cls(out.with_name(out.name + ".resume"), every, fingerprint)


def fingerprint(exp: dict, inputs: list[Path]) -> dict:
    """The experiment (``--exp``, key order ignored) and its input files (path, size, mtime of every file below
    each input), hashed: a state saved for other settings or from inputs rewritten since is never resumed."""
    files = []
    for p in map(Path, inputs):
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                st = f.stat()
                files.append([str(f), st.st_size, st.st_mtime_ns])
    return {
        "experiment": hashlib.sha256(json.dumps(exp, sort_keys=True).encode()).hexdigest(),
        "inputs": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
    }


def interval(every: int, accumulate: int) -> int:
    """Steps between checkpoints: ``every`` rounded up to whole optimiser steps, so a checkpoint never falls
    inside a gradient accumulation (whose partial gradients it would have to hold)."""
    return -(-every // accumulate) * accumulate if every > 0 else 0


def latest(state_dir: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint (step, folder) in ``state_dir``, if any."""
    found = [(int(m.group(1)), p) for p in state_dir.glob("ckpt-*") if (m := CKPT.fullmatch(p.name))]
    return max(found) if found else None


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` with the bytes of ``src``: a hard link (the best file is only ever replaced, never written in
    place, so the linked bytes stay those of this checkpoint), or a copy where links are not supported."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _remove_tree(path: Path) -> None:
    """Delete a folder without ever leaving a partly deleted one under its name: rename, then delete."""
    if not path.exists():
        return
    doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.deleting-"))
    os.replace(path, doomed / path.name)
    shutil.rmtree(doomed)


@contextmanager
def _quiet_accelerate():
    """Accelerate logs five INFO lines per save or load; the job's log gets one line of ours instead."""
    logger = logging.getLogger("accelerate")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def save(accelerator, ckpt: Checkpointing, step: int, best_file: Path) -> Path:
    """Write the state of every object registered with ``accelerator`` as ``ckpt-<step>``, atomically, and drop
    the older checkpoints. Every process calls it (Accelerate saves per-process RNG states)."""
    t0 = time.perf_counter()
    tmp, final = ckpt.dir / f"tmp-{step:09d}", ckpt.dir / f"ckpt-{step:09d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a job killed while saving this very step
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    with _quiet_accelerate():
        accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process's RNG file is in before the folder is declared complete
    if accelerator.is_main_process:
        if best_file.exists():
            _link_or_copy(best_file, tmp / best_file.name)
        (tmp / FINGERPRINT).write_text(json.dumps(ckpt.fingerprint, sort_keys=True))
        _remove_tree(final)
        os.replace(tmp, final)  # the checkpoint exists, complete, from here on
        for p in ckpt.dir.iterdir():
            if p != final and (CKPT.fullmatch(p.name) or p.name.startswith("tmp-")):
                _remove_tree(p)
    accelerator.wait_for_everyone()
    log.info("step %d: resumable state saved in %.3f s (%s)", step, time.perf_counter() - t0, final)
    return final


def restore(accelerator, ckpt: Checkpointing, best_file: Path) -> int:
    """Load the newest checkpoint of ``ckpt.dir`` into the objects registered with ``accelerator`` and put its
    best-so-far file back at ``best_file``; returns its step, or 0 when there is nothing (of this experiment) to
    resume. A state of another experiment or from other inputs is removed with one warning."""
    for p in ckpt.dir.parent.glob(f".{ckpt.dir.name}.deleting-*"):
        shutil.rmtree(p, ignore_errors=True)  # a deletion interrupted by a kill
    found = latest(ckpt.dir) if ckpt.every > 0 else None
    if found is None:
        return 0
    step, path = found
    try:
        saved = json.loads((path / FINGERPRINT).read_text())
    except (OSError, ValueError):
        saved = {}
    differs = [k for k in ("experiment", "inputs") if saved.get(k) != ckpt.fingerprint.get(k)]
    if differs:
        what = "experiment (--exp)" if "experiment" in differs else "input files (rewritten since)"
        log.warning("not resuming from %s: it was saved for another %s; starting from step 0", path, what)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _remove_tree(ckpt.dir)
        accelerator.wait_for_everyone()
        return 0
    try:
        with _quiet_accelerate():
            accelerator.load_state(str(path))
    except Exception as e:
        raise RuntimeError(f"cannot resume from {path}: {e}; delete {ckpt.dir} to train from step 0") from e
    if accelerator.is_main_process:
        best_file.unlink(missing_ok=True)
        if (path / best_file.name).exists():
            _link_or_copy(path / best_file.name, best_file)
    accelerator.wait_for_everyone()
    log.info("resuming from step %d (%s)", step, path)
    return step


def discard(ckpt: Checkpointing) -> None:
    """Remove the resumable state once the job's outputs are all written."""
    _remove_tree(ckpt.dir)
