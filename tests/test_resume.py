"""Resumable editor training: a training job killed after a checkpoint continues to the very bytes of an
uninterrupted run; a Snakemake run killed with its jobs continues with the same command."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mendrepro.config import Experiment, resolve_experiment
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.models import build_model, save_model
from mendrepro.resume import Checkpointing, interval, latest, restore, save
from mendrepro.stale_locks import clear_stale_locks

ROOT = Path(__file__).resolve().parents[1]
MICRO = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
STEPS, EVERY = 60, 10  # the micro editor trains ~15 steps/s: a kill at the first checkpoint is well before the end


def _exp(**train) -> dict:
    exp = resolve_experiment(MICRO, "zsre", "bart", "mend", 0)
    exp["train"].update(steps=STEPS, patience=10**6, **train)  # the release's epoch sampler (micro.yaml)
    return exp


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A micro world and an untrained micro BART (training the editor needs no trained base model)."""
    root = tmp_path_factory.mktemp("inputs")
    world = generate_world(WorldConfig(**MICRO["world"]))
    paths = write_world(world, root / "world")
    tok = train_word_tokenizer(all_world_texts(world), root / "tok")
    spec = Experiment.from_dict(_exp()).model
    save_model(build_model(spec, tok, seed=0), tok, spec, root / "bart")
    files = {k: str(paths[k]) for k in ("zsre_train", "zsre_dev", "nq_train", "nq_dev")}
    return {"model": str(root / "bart"), "files": files}


def _train(inputs: dict, out: Path, exp: dict, every: int, wait: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mendrepro", "--threads", "1", "train", "--exp", json.dumps(exp)]
    cmd += ["--model", inputs["model"], "--files", json.dumps(inputs["files"]), "--out", str(out / "editor.pt")]
    cmd += ["--metrics", str(out / "train.json"), "--checkpoint-every", str(every)]
    out.mkdir(parents=True, exist_ok=True)
    log = (out.parent / f"{out.name}.log").open("a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})
    if wait:
        assert proc.wait(timeout=3600) == 0, (out.parent / f"{out.name}.log").read_text()[-3000:]
    return proc


def _kill_after_checkpoint(proc: subprocess.Popen, state: Path) -> int:
    """SIGKILL ``proc`` as soon as a complete checkpoint exists; the step it holds."""
    deadline = time.monotonic() + 3600
    while latest(state) is None:
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return latest(state)[0]


def _summary(out: Path) -> dict:
    """train.json without its timing and memory fields (wall time and peak RSS differ from run to run)."""
    d = json.loads((out / "train.json").read_text())
    return {k: v for k, v in d.items() if k not in ("seconds", "memory")}


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    """An uninterrupted run that never saves a resumable state."""
    out = tmp_path_factory.mktemp("ref") / "run"
    _train(inputs, out, _exp(), every=0)
    assert not (out / "editor.pt.resume").exists()
    return out


def test_killed_training_resumes_to_the_same_bytes(inputs, reference, tmp_path):
    out = tmp_path / "run"
    state = out / "editor.pt.resume"
    step = _kill_after_checkpoint(_train(inputs, out, _exp(), EVERY, wait=False), state)
    assert 0 < step < STEPS
    # Nothing half-written: no output yet, the state beside it.
    assert not (out / "editor.pt").exists() and not (out / "train.json").exists()
    _train(inputs, out, _exp(), EVERY)
    log = (tmp_path / "run.log").read_text()
    assert re.findall(r"resuming from step (\d+)", log) == [str(step)]
    assert (out / "editor.pt").read_bytes() == (reference / "editor.pt").read_bytes()
    assert _summary(out) == _summary(reference)
    assert not state.exists()  # deleted once the job's outputs are written
    assert sorted(p.name for p in out.iterdir()) == ["editor.pt", "manifest.json", "train.json"]


def test_state_of_another_experiment_is_ignored_with_one_warning(inputs, reference, tmp_path):
    out = tmp_path / "run"
    _kill_after_checkpoint(_train(inputs, out, _exp(lr=3e-3), EVERY, wait=False), out / "editor.pt.resume")
    _train(inputs, out, _exp(), EVERY)
    log = (tmp_path / "run.log").read_text()
    warnings = [line for line in log.splitlines() if "not resuming" in line]
    assert len(warnings) == 1 and "another experiment (--exp)" in warnings[0], warnings
    assert "resuming from step" not in log
    assert (out / "editor.pt").read_bytes() == (reference / "editor.pt").read_bytes()
    assert _summary(out) == _summary(reference)


class _Counter:
    def __init__(self):
        self.n = 0

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, d):
        self.n = d["n"]


def _rng_states():
    return random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state().tolist()


def test_saving_draws_no_random_number_and_a_half_written_state_is_not_resumed(tmp_path):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    net = acc.prepare(torch.nn.Linear(3, 2))
    counter = _Counter()
    acc.register_for_checkpointing(counter)
    ckpt = Checkpointing.beside(tmp_path / "editor.pt", 10, {"experiment": "a", "inputs": "b"})
    best = ckpt.dir / "editor.pt"
    ckpt.dir.mkdir()
    torch.save({"w": torch.ones(1)}, best)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = _rng_states()
    counter.n = 7
    save(acc, ckpt, 10, best)
    assert _rng_states() == before
    # A kill while saving the next checkpoint leaves tmp-*: the complete one is resumed, with its best file.
    (ckpt.dir / "tmp-000000020").mkdir()
    (ckpt.dir / "new").write_bytes(b"newer best, not in any checkpoint")
    os.replace(ckpt.dir / "new", best)  # as atomic.torch_save replaces it, never writing in place
    weight = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.zero_()
    counter.n, _ = 0, random.random()
    assert restore(acc, ckpt, best) == 10
    assert counter.n == 7 and torch.equal(net.weight, weight) and _rng_states() == before
    assert torch.load(best)["w"].item() == 1.0


def test_checkpoints_fall_on_whole_optimiser_steps():
    assert [interval(e, 10) for e in (0, 1, 10, 15, 100)] == [0, 10, 10, 20, 100]
    assert interval(5, 1) == 5


_HOLD = """
import sys, time
from mendrepro.stale_locks import clear_stale_locks
clear_stale_locks(sys.argv[1]); print("holding", flush=True); time.sleep(60)
"""


def test_stale_snakemake_locks_are_removed_only_when_no_run_is_alive(tmp_path):
    d = tmp_path / ".snakemake"
    (d / "locks").mkdir(parents=True)
    (d / "locks/0.output.lock").write_text("results/x\n")
    alive = subprocess.Popen([sys.executable, "-c", _HOLD, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        assert alive.stdout.readline().strip() == "holding"
        (d / "locks/0.output.lock").write_text("results/x\n")  # the live run's own lock
        assert clear_stale_locks(d) == [] and (d / "locks/0.output.lock").exists()
    finally:
        alive.kill()
        alive.wait()
    # The live run is gone (killed): a new run removes what it left.
    assert clear_stale_locks(tmp_path / "other") == []
    from mendrepro import stale_locks

    stale_locks._held.pop(d.resolve()).close()  # this process's own hold, so that it can ask again
    assert clear_stale_locks(d) == [d.resolve() / "locks/0.output.lock"]
    assert not (d / "locks/0.output.lock").exists()


def _workdir(path: Path, steps: int) -> Path:
    for item in ("Snakefile", "workflow", "profiles", "config", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, path / item)
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    cfg["train"].update(steps=steps, patience=10**6)
    (path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return path


TARGET = "results/micro/seed0/zsre/bart/mend/editor.pt"


@pytest.mark.slow
def test_snakemake_killed_during_training_continues_with_the_same_command(tmp_path):
    """kill -9 of the whole Snakemake process group during a training job, then the same command, without
    --unlock or --rerun-incomplete (and without the default profile, which would add the latter)."""
    steps = 250  # two resumable states at the default interval (100 steps), the kill at the first
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "run.yaml", "--cores", "2", TARGET]
    (tmp_path / "ref").mkdir(), (tmp_path / "wd").mkdir()
    ref, wd = _workdir(tmp_path / "ref", steps), _workdir(tmp_path / "wd", steps)
    proc = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = wd / f"{TARGET}.resume"
    deadline = time.monotonic() + 3600
    while latest(state) is None:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((wd / ".snakemake/locks").glob("*.lock")), "no lock left behind: the test tests nothing"
    again = subprocess.run([*cmd, "--workflow-profile", "none"], cwd=wd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "removed the locks of a run that was killed" in again.stderr
    log = (wd / "results/micro/logs/seed0/train/zsre/bart/mend.log").read_text()
    assert "resuming from step 100" in log
    done = subprocess.run(cmd, cwd=ref, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (wd / TARGET).read_bytes() == (ref / TARGET).read_bytes()
    assert not state.exists()
