"""benchmarks.dag_profile on a hand-written results folder: sums per rule, and a forked run's client-measured CPU
time and max RSS left out for the forked rules only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the repository, not of mendrepro
    sys.path.insert(0, str(ROOT))

from benchmarks import dag_profile  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
JOBS = {  # benchmark file: (wall s, max_rss MB, cpu s)
    "seed0/train/zsre/bart/mend.tsv": (80.0, 700.0, 79.0),
    "seed0/train/zsre/bart/ke.tsv": (40.0, 650.0, 39.0),
    "seed0/pretrain/bart.tsv": (300.0, 600.0, 298.0),
    "seed0/evaluate/zsre/bart/mend/k1.tsv": (10.0, 500.0, 9.0),
    "memory_probe/bart-base.tsv": (42.0, 1860.0, 39.0),
}


def _results(tmp_path: Path, forked: bool) -> Path:
    for name, (s, rss, cpu) in JOBS.items():
        path = tmp_path / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
    if forked:
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "fork_server.log").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("forked", "train_row", "total_line"),
    [
        (
            False,
            "| train        |      2 |      120 |     118 |          80 |          700 |   0.254 |",
            "5 jobs, 472 s summed wall time, 464 s CPU time",
        ),
        (
            True,
            "| train        |      2 |      120 |       — |          80 |            — |   0.254 |",
            "5 jobs, 472 s summed wall time",
        ),
    ],
)
def test_profile_per_rule(tmp_path, capsys, forked, train_row, total_line):
    assert dag_profile.main([str(_results(tmp_path, forked))]) == 0
    out = capsys.readouterr().out
    assert train_row in out
    assert total_line + "\n" in out
    # The memory probe runs in a process of its own either way: its numbers stay.
    assert "| memory_probe |      1 |       42 |      39 |          42 |         1860 |   0.089 |" in out
    assert ("forked from the fork server" in out) == forked
