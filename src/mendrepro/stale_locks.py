"""Snakemake's working-directory locks, removed when the run that left them is dead.

Snakemake writes ``.snakemake/locks/*.lock`` while it runs and deletes them when it ends; a run killed by a signal
(kill -9, a lost SSH session, an out-of-memory kill) leaves them, and the next run stops with ``LockException``
until it is given ``--unlock``. The lock files do not say whose they are, so every run of this workflow also holds
a shared ``flock`` on ``.snakemake/mendrepro-run.lock`` for as long as its process lives (the kernel drops it
however the process ends). A run that can take that lock exclusively knows that no other run of this workflow is
alive, so any lock files present are stale and it removes them; a run that cannot leaves them to Snakemake, which
then refuses to start over files a live run is writing, as it should. Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

# The open lock file per .snakemake folder: the shared lock lasts as long as this process.
_held: dict[Path, object] = {}


def clear_stale_locks(snakemake_dir: Path | str = ".snakemake") -> list[Path]:
    """Remove Snakemake's lock files when no other run of this workflow holds ``snakemake_dir``'s run lock, then
    hold it (shared) until this process exits; returns the lock files removed."""
    d = Path(snakemake_dir).resolve()
    if d in _held:
        return []
    d.mkdir(parents=True, exist_ok=True)
    f = open(d / "mendrepro-run.lock", "a")  # noqa: SIM115 (kept open on purpose: closing it drops the lock)
    removed: list[Path] = []
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another run is alive: its locks are real
    except OSError:
        f.close()  # a filesystem without flock: leave Snakemake's locks to Snakemake
        return []
    else:
        removed = sorted((d / "locks").glob("*.lock"))
        for p in removed:
            p.unlink(missing_ok=True)
    fcntl.flock(f, fcntl.LOCK_SH)
    _held[d] = f
    return removed
