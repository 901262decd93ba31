"""The whole DAG on the micro profile, run by Snakemake in a temporary copy of the workflow."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _workdir(tmp_path: Path, config: str) -> Path:
    for item in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    cfg = yaml.safe_load((ROOT / config).read_text())
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "run.yaml", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in workdir.glob("results/*/logs/**/*.log"))
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n{logs}")
    return proc


def _job_counts(dry_run_output: str) -> dict[str, int]:
    counts, inside = {}, False
    for line in dry_run_output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            inside = True
            continue
        if inside and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif inside and counts and not parts:
            break
    return counts


@pytest.mark.parametrize("config", ["config/tiny.yaml", "tests/fixtures/micro.yaml"])
def test_dry_run_plans_the_dag(tmp_path, config):
    out = _snakemake(_workdir(tmp_path, config), "-n", "--cores", "1").stdout
    counts = _job_counts(out)
    cfg = yaml.safe_load((ROOT / config).read_text())
    runs = {
        (e["task"], e["model"], ed)
        for t in ("table3", "table4")
        for e in cfg["tables"][t]["experiments"]
        for ed in cfg["tables"][t]["editors"]
    }
    learned = {r for r in runs if cfg["editors"][r[2]]["kind"] in ("mend", "ke", "enn")}
    assert counts["evaluate"] == len(runs) == 3 * 6 + 4 * 4, counts
    assert counts["train_editor"] == len(learned) == 3 * 3 + 4 * 2, counts
    assert counts["pretrain"] == len(cfg["models"]) == 7
    assert counts["table3"] == counts["table4"] == counts["world"] == counts["self_sample"] == 1


def test_paper_profile_plans_every_table_without_the_network(tmp_path):
    wd = _workdir(tmp_path, "config/paper.yaml")
    counts = _job_counts(_snakemake(wd, "-n", "--cores", "all").stdout)
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    runs = {
        (e["task"], e["model"], ed)
        for t in ("table3", "table4")
        for e in cfg["tables"][t]["experiments"]
        for ed in cfg["tables"][t]["editors"]
    }
    learned = {r for r in runs if cfg["editors"][r[2]]["kind"] in ("mend", "ke", "enn")}
    assert counts["evaluate"] == len(runs) and counts["train_editor"] == len(learned), counts
    # Checkpoints are fetched, not pre-trained; data files are fetched, not generated or sampled.
    assert counts["fetch_model"] == len(cfg["models"]) and "pretrain" not in counts and "world" not in counts
    assert "self_sample" not in counts
    assert {f"fetch_{k}" for k in cfg["downloads"]} <= set(counts)
    assert counts["table3"] == counts["table4"] == 1
    # The same plan through the SLURM executor profile.
    slurm = _snakemake(wd, "-n", "--profile", "workflow/profiles/slurm").stdout
    assert _job_counts(slurm) == counts


def test_paper_input_missing_offline_fails_in_seconds_saying_where_it_goes(tmp_path):
    wd = _workdir(tmp_path, "config/paper.yaml")
    target = yaml.safe_load((wd / "run.yaml").read_text())["data"]["fever_dev"]
    t0 = time.monotonic()
    proc = _snakemake(wd, "--cores", "1", target, check=False)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    out = proc.stdout + proc.stderr
    assert "Cannot get fever_dev" in out and f"expected: {target}" in out and "data.mirror" in out
    assert not (wd / target).exists()


def test_bad_config_fails_at_dag_start_with_schema_message(tmp_path):
    wd = _workdir(tmp_path, "tests/fixtures/micro.yaml")
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["eval"]["n_edits"] = "many"
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(wd, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "n_edits" in proc.stderr + proc.stdout


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


@pytest.mark.slow
def test_micro_dag_end_to_end(tmp_path):
    wd = _workdir(tmp_path, "tests/fixtures/micro.yaml")
    _snakemake(wd, "--cores", "2")
    res, fig = wd / "results/micro", wd / "figures/micro"
    for model in ("bart", "bert", "gpt2", "gptneo", "gptj", "t5xl", "t5xxl"):
        assert (res / f"models/{model}/config.json").exists()
        assert _finite(json.loads((res / f"models/{model}.metrics.json").read_text()))
    for task, model in (("fever", "bert"), ("zsre", "bart"), ("wikitext", "gpt2")):
        for editor in ("mend", "ke", "enn"):
            train = json.loads((res / f"{task}/{model}/{editor}/train.json").read_text())
            assert train["steps"] > 0 and _finite(train["history"])
        for editor in ("ft", "ftkl", "enn", "ke", "mend", "cache"):
            run = res / f"{task}/{model}/{editor}/eval_k1"
            lines = [json.loads(x) for x in (run / "edits.jsonl").read_text().splitlines()]
            metrics = json.loads((run / "metrics.json").read_text())
            assert lines and metrics["n"] == len(lines)
            assert _finite(metrics) and 0.0 <= metrics["es"] <= 1.0
            # The table's inputs are aggregations of the raw lines only.
            assert metrics["es"] == pytest.approx(sum(x["es"] for x in lines) / len(lines))
            assert (res / f"logs/evaluate/{task}/{model}/{editor}/k1.log").exists()
            # ENN changes the pre-edit model: its drawdown is also measured against the original model.
            assert ("dd_original" in metrics) == (editor == "enn")
    for ext in ("md", "tex", "csv"):
        assert (fig / f"table4.{ext}").stat().st_size > 0 and (fig / f"table3.{ext}").stat().st_size > 0
    rows = {r["Editor"]: r for r in csv.DictReader((fig / "table4.csv").open())}
    assert set(rows) == {"FT", "FT+KL", "ENN", "KE", "MEND", "Cache (beyond Table 4)"}
    for row in rows.values():
        for col in ("FEVER ES (ours)", "zsRE ES (ours)", "Wikitext ES (ours)", "Wikitext DD (ours)"):
            assert math.isfinite(float(row[col]))
    assert rows["MEND"]["zsRE ES (paper)"] == "0.98"
    for task, model in (("wikitext", "gptneo"), ("wikitext", "gptj"), ("zsre", "t5xl"), ("zsre", "t5xxl")):
        for editor in ("ft", "ftkl", "ke", "mend"):
            metrics = json.loads((res / f"{task}/{model}/{editor}/eval_k1/metrics.json").read_text())
            assert _finite(metrics) and metrics["n"] > 0 and metrics["model"] == model
    rows3 = {r["Editor"]: r for r in csv.DictReader((fig / "table3.csv").open())}
    assert set(rows3) == {"FT", "FT+KL", "KE", "MEND"}
    for row in rows3.values():
        for label in ("GPT-Neo 2.7B", "GPT-J 6B", "T5-XL", "T5-XXL"):
            assert math.isfinite(float(row[f"{label} ES (ours)"])) and math.isfinite(float(row[f"{label} DD (ours)"]))
    assert rows3["MEND"]["GPT-J 6B ES (paper)"] == "0.88"
    # A second run has nothing to do; one table's target re-plans only that table.
    assert "Nothing to be done" in _snakemake(wd, "-n", "--cores", "1").stdout
    (fig / "table4.md").unlink()
    assert _job_counts(_snakemake(wd, "-n", "--cores", "1", "figures/micro/table4.md").stdout) == {
        "table4": 1,
        "total": 1,
    }
    # Nothing half-written: every temporary file or directory of the atomic writers is gone.
    hidden = [p for p in wd.rglob(".*") if ".snakemake" not in p.parts and p.name != ".snakemake_timestamp"]
    assert not hidden, hidden
