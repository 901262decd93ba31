"""The job counts docs/running.md states are the ones the DAG plans now: each is checked against a dry run on a
fresh copy of the workflow (no results), so a change of the DAG that leaves them stale fails here, printing the
numbers to write."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNING = ROOT / "docs/running.md"

# (what docs/running.md says, as a pattern whose group 1 is the total and group 2, if any, the jobs per rule "rule
# n, ..."; the dry run's arguments). Targets come after --, as the docs tell users to write them.
CLAIMS = {
    "tiny": (r"shows the DAG of the tiny profile \((\d+) jobs for one seed\)", []),
    "tiny table6": (r"`snakemake -n figures/tiny/table6\.md` plans (\d+) jobs \(([^)]*)\)", ["figures/tiny/table6.md"]),
    "tiny table5": (r"and `figures/tiny/table5\.md` (\d+) \(([^)]*)\)", ["figures/tiny/table5.md"]),
    "paper": (r"--configfile config/paper\.yaml +# plan: (\d+) jobs", ["--configfile", "config/paper.yaml"]),
    "rehearsal": (r"runs that DAG \((\d+) jobs, `--cores 1`\)", ["--configfile", "config/rehearsal.yaml"]),
}


def _job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a dry run: rule -> jobs, and "total"."""
    counts, inside = {}, False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            inside = True
        elif inside and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif inside and counts and not parts:
            break
    return counts


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> dict[str, dict[str, int]]:
    """Each claim's dry run, on its own copy of the workflow, run side by side."""

    # The folders are made here, not in the threads: pytest's first mktemp creates the base folder, and threads
    # racing to do so each make their own and then refuse the others' paths.
    workdirs = {name: tmp_path_factory.mktemp(name.replace(" ", "_")) for name in CLAIMS}

    def dry_run(name: str) -> tuple[str, dict[str, int]]:
        wd = workdirs[name]
        for item in ("Snakefile", "workflow", "profiles", "config", "envs", "src"):
            src = ROOT / item
            (shutil.copytree if src.is_dir() else shutil.copy)(src, wd / item)
        args = CLAIMS[name][1]
        targets = [a for a in args if a.startswith("figures/")]
        options = [a for a in args if a not in targets]
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            *options,
            *(["--", *targets] if targets else []),
        ]
        proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return name, _job_counts(proc.stdout)

    with ThreadPoolExecutor(max_workers=len(CLAIMS)) as pool:
        return dict(pool.map(dry_run, CLAIMS))


@pytest.mark.parametrize("name", list(CLAIMS))
def test_the_job_counts_in_the_docs_are_the_dags(planned, name):
    pattern = CLAIMS[name][0]
    found = re.search(pattern, RUNNING.read_text(encoding="utf-8"))
    assert found, f"docs/running.md no longer says /{pattern}/"
    counts = planned[name]
    total = counts.pop("total")
    counts.pop("all", None)
    assert int(found.group(1)) == total, f"docs/running.md, {name}: {found.group(1)} jobs, the DAG plans {total}"
    if found.re.groups > 1:
        said = {rule: int(n) for rule, n in (item.split() for item in re.split(r",\s*", found.group(2)))}
        plan = ", ".join(f"{rule} {n}" for rule, n in counts.items())
        assert said == counts, f"docs/running.md, {name}: ({found.group(2)}), the DAG plans ({plan})"
