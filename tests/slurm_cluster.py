"""A throwaway one-node SLURM cluster for tests: munged, slurmctld and slurmd started from a config in a temporary
directory, on free ports, and stopped afterwards whatever happens.

    python tests/slurm_cluster.py install        # apt-get install slurm-wlm munge where missing (as root)
    python tests/slurm_cluster.py run -- CMD...  # CMD with SLURM_CONF pointing at a fresh cluster, then stop it

Nothing outside the temporary directory is touched: the daemons run in the foreground as children of this process
(never as system services), with their own munge key and socket, state, spool and logs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "sinfo")
INSTALL_HINT = "the SLURM test needs slurm-wlm and munge: apt-get install slurm-wlm munge (as root)"
NODE = "node1"
PARTITION = "test"


def missing_programs() -> list[str]:
    """The daemons and client commands of the cluster that are not on PATH (sbin included)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [p for p in PROGRAMS if shutil.which(p, path=path) is None]


def install() -> None:
    """Install slurm-wlm and munge with apt-get where they are missing; only root on a Debian-like system can."""
    if not missing_programs():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"error: {INSTALL_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], check=True, env=env)
    # Debian's packages may start their system services; this cluster runs its own daemons, so stop them.
    for service in ("slurmctld", "slurmd", "munge"):
        subprocess.run(["service", service, "stop"], capture_output=True, check=False)
    if missing_programs():
        raise SystemExit(f"error: still missing after apt-get install: {' '.join(missing_programs())}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])) or name


def write_config(root: Path, cpus: int, memory_mb: int) -> Path:
    """slurm.conf for one node on this host: no cgroups (proctrack/linuxproc, task/none), no accounting daemon,
    root as SlurmUser, and finished jobs kept in squeue for an hour (MinJobAge), since without accounting squeue
    is where Snakemake's SLURM plugin reads whether a job completed or failed."""
    for d in ("state", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    conf = f"""\
ClusterName=mendtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge.socket"}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log/slurmctld.log"}
SlurmdLogFile={root / "log/slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
KillWait=5
SchedulerParameters=sched_interval=1,bf_interval=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    path = root / "slurm.conf"
    path.write_text(conf)
    return path


def _die_with_parent() -> None:
    """In a daemon's child process: SIGTERM it when the process that started it dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (and SIGHUP) raise in the main thread while the cluster runs, so that it is stopped as on an error."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    old = {s: signal.signal(s, raise_) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _wait(what: str, ok, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            tail = "\n".join(f"== {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
            raise RuntimeError(f"the test cluster did not come up: {what} after {timeout:.0f} s\n{tail}")
        time.sleep(0.2)


@contextlib.contextmanager
def cluster(root: Path | None = None, cpus: int | None = None, memory_mb: int = 16000) -> Iterator[dict]:
    """Start a one-node cluster and yield the environment its clients need (SLURM_CONF); stop it on exit."""
    if missing_programs():
        raise RuntimeError(INSTALL_HINT)
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slurm-")))
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)  # munged refuses a socket directory that others may write to
        conf = write_config(root, cpus or os.cpu_count() or 1, memory_mb)
        # The plugin's job step removes every SLURM_* variable, SLURM_CONF included, before its nested `srun`, which
        # then looks only at /etc/slurm: an `srun` first on PATH puts this cluster's config back.
        (root / "bin").mkdir(exist_ok=True)
        srun = root / "bin/srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {_sbin("srun")} "$@"\n')
        srun.chmod(0o755)
        env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
        procs: list[subprocess.Popen] = []

        def stop() -> None:
            # Jobs first (their processes belong to slurmd's children), then the daemons, newest first.
            if procs and len(procs) == 3:
                subprocess.run(["scancel", "--full", "--quiet", "-p", PARTITION], env=env, capture_output=True)
                # scancel only asks: wait (a while) until slurmd has killed what the jobs started.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    q = subprocess.run(["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], env=env, capture_output=True)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.5)
            for p in reversed(procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in reversed(procs):
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

        stack.callback(stop)
        stack.enter_context(_stop_on_sigterm())
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        log = root / "log"
        munge = [_sbin("munged"), "--foreground", "--force", f"--socket={root / 'munge.socket'}"]
        munge += [f"--key-file={key}", f"--pid-file={root / 'munged.pid'}", f"--log-file={log / 'munged.log'}"]
        munge += [f"--seed-file={root / 'munged.seed'}"]
        out = (log / "daemons.out").open("ab")
        stack.callback(out.close)
        procs.append(
            subprocess.Popen(munge, stdout=out, stderr=out, start_new_session=True, preexec_fn=_die_with_parent)
        )
        logs = [log / "munged.log", log / "slurmctld.log", log / "slurmd.log", log / "daemons.out"]
        _wait("munged's socket", (root / "munge.socket").exists, 30, logs)
        procs.append(
            subprocess.Popen(
                [_sbin("slurmctld"), "-D", "-i", "-f", str(conf)],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        )
        procs.append(
            subprocess.Popen(
                [_sbin("slurmd"), "-D", "-N", NODE, "-f", str(conf)],
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        )

        def idle() -> bool:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{Path(p.args[0]).name} exited with {p.returncode}: see {log}")
            q = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True)
            return q.returncode == 0 and q.stdout.strip() == "idle"

        _wait(f"node {NODE} idle", idle, 60, logs)
        yield env


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        install()
        return 0
    if argv[:1] == ["run"] and argv[1:2] == ["--"] and len(argv) > 2:
        with cluster() as env:
            return subprocess.run(argv[2:], env=env).returncode
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
