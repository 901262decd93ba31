"""The DAG on SLURM: the micro DAG through `--workflow-profile profiles/slurm` on a throwaway one-node cluster
(tests/slurm_cluster.py), its raw outputs against a local run of the same config, one editor-training job cancelled
with scancel mid-run and resumed by the profile's retry; and the sbatch call the plugin builds for a paper GPU job.

The cluster tests are marked `slurm` and left out of `make test` (pyproject addopts); `make test-slurm` runs them.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import slurm_cluster
import yaml
from test_workflow import _comparable, _snakemake, _workdir

from mendrepro.resume import latest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "tests/fixtures/slurm-site.yaml"
# The editor-training job cancelled mid-run: trained long enough here to save a resumable state (every 100 steps)
# before it is cancelled; KE, since no other editor (Table 5, Table 6) inherits its budget.
CANCELLED = "results/micro/seed0/zsre/bart/ke/editor.pt"
CANCELLED_LOG = "results/micro/logs/seed0/train/zsre/bart/ke.log"
KE_STEPS = 250
# Measured, not computed: the memory probe's peak memory, besides the fields the determinism test leaves aside.
MEASURED = ("peak_mb",)
# Everything under results/ but logs and benchmarks (wall times), the tables of figures/, and the claims table but
# its memory claim (F3.1: the memory probe's measured peaks; claims.md renders the same rows).
SKIP = ("logs", "benchmarks", ".snakemake")
TABLES = ("table3.*", "table4.*", "table5.*", "table6.*", "claims.csv")
MEASURED_CLAIMS = ("F3.1",)


def _micro(tmp_path: Path, reuse: bool = False) -> Path:
    """The micro config in a fresh copy of the workflow, with one KE editor trained long enough to be cancelled.
    With ``reuse``, the copy is `make test`'s finished local micro run where one of the same inputs is kept
    (tests/micro_cache.py): Snakemake then redoes only what the KE change touches."""
    import micro_cache

    if not (reuse and micro_cache.fetch(tmp_path)):
        _workdir(tmp_path, "tests/fixtures/micro.yaml")
    wd = tmp_path
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["editors"]["ke"]["per_model"] = {"bart": {"train": {"steps": KE_STEPS, "patience": 10**6}}}
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def _with_site(wd: Path) -> None:
    """profiles/slurm with the test cluster's site settings merged over it, as a user edits the profile."""
    path = wd / "profiles/slurm/config.yaml"
    profile = yaml.safe_load(path.read_text())
    for key, value in yaml.safe_load(SITE.read_text()).items():
        if isinstance(value, dict):
            profile.setdefault(key, {}).update(value)
        else:
            profile[key] = value
    path.write_text(yaml.safe_dump(profile, sort_keys=False))


def _outputs(wd: Path) -> list[Path]:
    files = [
        p.relative_to(wd)
        for p in sorted((wd / "results").rglob("*"))
        if p.is_file() and not any(part in SKIP for part in p.relative_to(wd).parts)
    ]
    return files + sorted(p.relative_to(wd) for t in TABLES for p in (wd / "figures/micro").glob(t))


def _comparable_output(path: Path):
    """An output as it must repeat (test_workflow._comparable), the claims table without its measured rows."""
    if path.name == "claims.csv":
        rows = list(csv.reader(path.open(encoding="utf-8")))
        assert {r[0] for r in rows} >= set(MEASURED_CLAIMS), "the measured claims left aside are gone"
        return [r for r in rows if r[0] not in MEASURED_CLAIMS]
    return _comparable(path, MEASURED)


def _slurm_job_of(out: str) -> str | None:
    """The SLURM job id of the running process that writes ``out`` (read from its environment)."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"train" not in cmd or out.encode() not in cmd:
                continue
            env = dict(x.split(b"=", 1) for x in (proc / "environ").read_bytes().split(b"\0") if b"=" in x)
        except (OSError, ValueError):
            continue
        if b"SLURM_JOB_ID" in env:
            return env[b"SLURM_JOB_ID"].decode()
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node cluster for this module (installed first where root can; else one line says what to install)."""
    if slurm_cluster.missing_programs():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.fail(slurm_cluster.INSTALL_HINT, pytrace=False)
        slurm_cluster.install()
    with slurm_cluster.cluster(tmp_path_factory.mktemp("cluster")) as env:
        yield env


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory) -> SimpleNamespace:
    """The micro DAG run locally and on the cluster at the same time (the cluster's jobs wait on status checks
    between them); on the cluster, the long KE training job is cancelled once it has saved a resumable state."""
    local, remote = _micro(tmp_path_factory.mktemp("local"), reuse=True), _micro(tmp_path_factory.mktemp("slurm"))
    _with_site(remote)
    args = [sys.executable, "-m", "snakemake", "--configfile", "run.yaml"]
    local_log, remote_log = (local / "snakemake.out").open("w"), (remote / "snakemake.out").open("w")
    on_slurm = ["--workflow-profile", "profiles/slurm", "--profile", "profiles/slurm-small"]
    procs = {
        "slurm": subprocess.Popen(
            [*args, *on_slurm], cwd=remote, env=cluster, stdout=remote_log, stderr=subprocess.STDOUT
        ),
        "local": subprocess.Popen([*args, "--cores", "2"], cwd=local, stdout=local_log, stderr=subprocess.STDOUT),
    }
    cancelled = None
    try:
        state = remote / f"{CANCELLED}.resume"
        deadline = time.monotonic() + 1800
        while cancelled is None:
            assert procs["slurm"].poll() is None, "the SLURM run ended before the KE job saved a resumable state"
            assert time.monotonic() < deadline
            if latest(state) is not None:
                job = _slurm_job_of(CANCELLED)
                step = latest(state)[0]
                assert job, f"no SLURM job is running {CANCELLED}"
                subprocess.run(["scancel", job], env=cluster, check=True)
                cancelled = SimpleNamespace(job=job, step=step, done=(remote / CANCELLED).exists())
            time.sleep(0.1)
        for name, proc in procs.items():
            assert proc.wait(timeout=1800) == 0, (
                f"{name} run failed:\n" + ((remote if name == "slurm" else local) / "snakemake.out").read_text()[-5000:]
            )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # Snakemake cancels its jobs on SIGINT (SIGTERM waits for them)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        local_log.close(), remote_log.close()
    squeue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", cancelled.job, "-o", "%T"], env=cluster, capture_output=True, text=True
    )
    cancelled.state = squeue.stdout.strip()
    return SimpleNamespace(local=local, slurm=remote, cancelled=cancelled)


@pytest.mark.slurm
def test_every_job_was_an_sbatch_submission_in_groups(runs):
    out = (runs.slurm / "snakemake.out").read_text()
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    # 102 jobs in a dozen or so submissions (the DAG's groups, profiles/slurm-small), one of them retried.
    assert 0 < len(submitted) < 30, len(submitted)
    assert "Group job edit" in out and "Group job base" in out


@pytest.mark.slurm
def test_the_cancelled_training_job_resumed_from_its_saved_state(runs):
    c = runs.cancelled
    assert c.state == "CANCELLED" and 0 < c.step < KE_STEPS and not c.done, vars(c)
    log = (runs.slurm / CANCELLED_LOG).read_text()
    resumed = re.findall(r"resuming from step (\d+)", log)
    assert resumed and int(resumed[0]) >= c.step, log[-2000:]
    assert (runs.slurm / CANCELLED).read_bytes() == (runs.local / CANCELLED).read_bytes()


@pytest.mark.slurm
def test_every_raw_output_on_slurm_equals_the_local_run(runs):
    files = _outputs(runs.slurm)
    assert files == _outputs(runs.local)
    assert len(files) > 250 and Path(CANCELLED) in files
    differ = [str(p) for p in files if _comparable_output(runs.slurm / p) != _comparable_output(runs.local / p)]
    assert not differ, differ


def test_the_paper_training_job_asks_slurm_for_one_gpu(tmp_path):
    """The sbatch call the plugin builds for a paper training job, from the resources Snakemake gives the job
    through profiles/slurm (the dry run prints them): one GPU through the plugin's `gpu` resource, CPUs per GPU,
    the config's memory and run time, the profile's partition."""
    from snakemake_executor_plugin_slurm import Executor
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    wd = _workdir(tmp_path, "config/paper.yaml")
    target = "results/paper/seed0/zsre/bart/mend/editor.pt"
    # --forcerun takes any number of rule names, so the target goes before it (after it, it is read as a rule
    # name and the dry run plans the default target instead).
    out = _snakemake(wd, "-n", target, "--workflow-profile", "profiles/slurm", "--forcerun", "train_editor").stdout
    assert out.count("rule train_editor:") == 1, out
    block = out.split("rule train_editor:", 1)[1]
    assert "model=bart, editor=mend" in block, block
    line = next(x for x in block.splitlines() if x.strip().startswith("resources:"))
    resources = {}
    for item in line.split(":", 1)[1].split(","):
        key, value = item.strip().split("=", 1)
        if not value.startswith("<"):
            resources[key] = int(value) if value.isdigit() else value

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=1, name="train_editor", is_group=lambda: False)
    params = {"run_uuid": "run", "slurm_logfile": "log", "comment_str": "c", "account": "", "workdir": str(wd)}
    params["partition"] = Executor.get_partition_arg(SimpleNamespace(_partitions=None), job)
    call = get_submit_command(job, params) + set_gres_string(job)
    assert re.search(r" --gpus=1( |$)", call) and "--gres" not in call, call
    assert "--cpus-per-gpu=8" in call and "--cpus-per-task" not in call, call
    # The memory and run time the DAG planned for this job (config/paper.yaml's resources) reach sbatch as they are.
    planned = yaml.safe_load((Path(__file__).parents[1] / "config/paper.yaml").read_text())["resources"]["train"]
    assert (resources["mem_mb"], resources["runtime"]) == (planned["mem_mb"], planned["runtime"]), resources
    assert f" --mem {resources['mem_mb']}" in call and f" -t {resources['runtime']}" in call and " -p gpu" in call, call
