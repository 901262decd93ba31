"""The whole DAG on the micro profile, run by Snakemake in a temporary copy of the workflow."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mendrepro.numerics import has_avx2

ROOT = Path(__file__).resolve().parents[1]


def _workdir(tmp_path: Path, config: str) -> Path:
    for item in ("Snakefile", "workflow", "profiles", "config", "envs"):
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


def _planned_runs(cfg: dict) -> tuple[set, set]:
    """(evaluation runs, trained editors) that the config's tables need: (task, model, editor id[, k])."""
    runs = set()
    for t in cfg["tables"].values():
        ks = [b["k"] for b in t.get("batches", [{"k": 1}])]
        for e in t["experiments"]:
            for ed in t["editors"]:
                runs |= {(e["task"], e["model"], ed if k == 1 else f"{ed}-k{k}", k) for k in ks}

    def kind(editor_id: str) -> str:
        entry = cfg["editors"].get(editor_id) or cfg["editors"][editor_id.rsplit("-k", 1)[0]]
        return entry.get("kind") or cfg["editors"][entry["variant_of"]]["kind"]

    learned = {r[:3] for r in runs if kind(r[2]) in ("mend", "ke", "enn")}
    return runs, learned


@pytest.mark.parametrize("config", ["config/tiny.yaml", "tests/fixtures/micro.yaml"])
def test_dry_run_plans_the_dag(tmp_path, config):
    proc = _snakemake(_workdir(tmp_path, config), "-n", "--cores", "1")
    # The workflow profile beside the top-level Snakefile is loaded without being named.
    assert "Using workflow specific profile profiles/default for setting default command line arguments" in proc.stderr
    out = proc.stdout
    counts = _job_counts(out)
    cfg = yaml.safe_load((ROOT / config).read_text())
    runs, learned = _planned_runs(cfg)
    n_k = len(cfg["tables"]["table5"]["batches"]) - 1  # Table 5's k > 1 columns: ENN, MEND and FT each
    # Tables 3 and 4 (the paper's five editors, the cache and FT+L); Table 5's k > 1 (FT evaluated, not trained);
    # Table 6's six MEND ablations on two tasks (its MEND row is Table 4's).
    assert counts["evaluate"] == len(runs) == 3 * 7 + 4 * 4 + 3 * n_k + 6 * 2, counts
    assert counts["train_editor"] == len(learned) == 3 * 3 + 4 * 2 + 2 * n_k + 6 * 2, counts
    assert counts["pretrain"] == len(cfg["models"]) == 7
    assert counts["table3"] == counts["table4"] == counts["world"] == counts["self_sample"] == 1
    assert counts["table5"] == counts["table6"] == counts["figure3_memory"] == 1
    assert counts.get("memory_probe", 0) == len(cfg.get("memory_probe", {}).get("sizes", []))


def test_default_profile_sets_the_local_defaults_and_slurm_replaces_it(monkeypatch):
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    _, local = parse_args(["-n"])
    assert local.printshellcmds and local.rerun_incomplete and local.show_failed_logs
    assert {k: r.value for k, r in local.resources.items()} == {"gpu": 1}
    _, off = parse_args(["-n", "--workflow-profile", "none"])
    assert not off.printshellcmds and not off.resources
    _, slurm = parse_args(["-n", "--workflow-profile", "profiles/slurm"])
    assert slurm.executor == "slurm" and not slurm.resources  # no local one-GPU cap on the cluster


def test_paper_profile_plans_every_table_without_the_network(tmp_path):
    wd = _workdir(tmp_path, "config/paper.yaml")
    counts = _job_counts(_snakemake(wd, "-n", "--cores", "all").stdout)
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    runs, learned = _planned_runs(cfg)
    assert counts["evaluate"] == len(runs) and counts["train_editor"] == len(learned), counts
    assert counts["table5"] == counts["table6"] == counts["figure3_memory"] == 1
    assert counts["memory_probe"] == len(cfg["memory_probe"]["sizes"]) == 7
    # Checkpoints are fetched, not pre-trained; data files are fetched, not generated or sampled.
    assert counts["fetch_model"] == len(cfg["models"]) and "pretrain" not in counts and "world" not in counts
    assert "self_sample" not in counts
    rules = {f"{'place' if d['kind'] == 'placed' else 'fetch'}_{k}" for k, d in cfg["downloads"].items()}
    assert rules <= set(counts)
    assert counts["table3"] == counts["table4"] == 1
    # The same plan through the SLURM executor profile, which replaces the local default profile (and its GPU cap).
    slurm = _snakemake(wd, "-n", "--workflow-profile", "profiles/slurm")
    assert "workflow specific profile profiles/slurm" in slurm.stderr and "profiles/default" not in slurm.stderr
    assert _job_counts(slurm.stdout) == counts


def test_paper_input_missing_offline_fails_in_seconds_saying_where_it_goes(tmp_path):
    wd = _workdir(tmp_path, "config/paper.yaml")
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    target = cfg["data"]["fever_dev"]
    placed = f"{cfg['data']['placed']}/{cfg['downloads']['fever_dev']['file']}"
    t0 = time.monotonic()
    proc = _snakemake(wd, "--cores", "1", target, check=False)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    out = proc.stdout + proc.stderr
    assert f"Cannot get fever_dev: {placed} is not on disk" in out and "data.mirror" in out
    assert not (wd / target).exists() and not (wd / placed).exists()


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


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> Path:
    """The whole micro DAG, run once for the tests of this module that read its outputs."""
    import micro_cache

    run_key = micro_cache.key()
    wd = _workdir(tmp_path_factory.mktemp("micro"), "tests/fixtures/micro.yaml")
    _snakemake(wd, "--cores", "2")
    micro_cache.store(wd, run_key)  # the SLURM test's local reference (tests/micro_cache.py)
    return wd


# What a run measures rather than computes: wall times, memory, and when a manifest was written.
_MEASURED = {"seconds", "seconds_per_edit", "memory", "peak_edit_memory_mb", "written"}


def _comparable(path: Path, also_measured: tuple[str, ...] = ()):
    """A raw output as it must repeat: JSON without measured fields (and ``also_measured``), anything else as
    bytes."""
    measured = _MEASURED | set(also_measured)
    if path.suffix in (".json", ".jsonl"):

        def strip(o):
            if isinstance(o, dict):
                return {k: strip(v) for k, v in o.items() if k not in measured}
            return [strip(v) for v in o] if isinstance(o, list) else o

        text = path.read_text(encoding="utf-8")
        docs = [json.loads(x) for x in text.splitlines()] if path.suffix == ".jsonl" else [json.loads(text)]
        return [strip(d) for d in docs]
    return path.read_bytes()


@pytest.mark.slow
def test_a_second_run_writes_the_same_raw_outputs(micro_run, tmp_path):
    """Determinism: Table 4's part of the micro DAG (world, tokenizer, pre-training, self-samples, every learned
    editor's training, every evaluation, the table) run again in a fresh directory writes every raw output and the
    table as the first run did, measured fields (time, memory) aside; checkpoints and models byte for byte. The
    first run forks its jobs from the fork server, this one starts each job in a process of its own."""
    again = _workdir(tmp_path, "tests/fixtures/micro.yaml")
    _snakemake(again, "--cores", "2", "figures/micro/table4.csv", "--config", "fork_server=false")
    assert not (again / "results/micro/logs/fork_server.log").exists()
    skip = ("logs", "benchmarks", ".snakemake")
    files = [
        p
        for p in sorted((again / "results").rglob("*"))
        if p.is_file() and not any(part in skip for part in p.relative_to(again).parts)
    ]
    files += sorted((again / "figures/micro").glob("table4.*"))
    assert len(files) > 100 and any(p.name == "editor.pt" for p in files)
    assert any(p.name == "edits.jsonl" for p in files) and any(p.suffix == ".safetensors" for p in files)
    differ = [
        str(p.relative_to(again)) for p in files if _comparable(p) != _comparable(micro_run / p.relative_to(again))
    ]
    assert not differ, differ


@pytest.mark.slow
def test_micro_dag_end_to_end(micro_run):
    wd = micro_run
    # The run forked its jobs from one server, which wrote nothing (no error) to its log.
    assert (wd / "results/micro/logs/fork_server.log").read_text() == ""
    res, fig = wd / "results/micro/seed0", wd / "figures/micro"
    # Every job ran on the pinned CPU path (mendrepro.numerics), the fork server's children included.
    pinned = os.environ.get("MKL_CBWR", "AVX2" if has_avx2() else "unset")
    manifests = list(res.glob("*/*/*/manifest.json"))
    assert manifests and {json.loads(m.read_text())["cpu_numerics"]["mkl_cbwr"] for m in manifests} == {pinned}
    for model in ("bart", "bert", "gpt2", "gptneo", "gptj", "t5xl", "t5xxl"):
        assert (res / f"models/{model}/config.json").exists()
        assert _finite(json.loads((res / f"models/{model}.metrics.json").read_text()))
    for task, model in (("fever", "bert"), ("zsre", "bart"), ("wikitext", "gpt2")):
        for editor in ("mend", "ke", "enn"):
            train = json.loads((res / f"{task}/{model}/{editor}/train.json").read_text())
            assert train["steps"] > 0 and _finite(train["history"]) and isinstance(train["hit_step_cap"], bool)
            assert train["seed"] == 0
        for editor in ("ft", "ftkl", "enn", "ke", "mend", "cache", "ftl"):
            run = res / f"{task}/{model}/{editor}/eval_k1"
            lines = [json.loads(x) for x in (run / "edits.jsonl").read_text().splitlines()]
            metrics = json.loads((run / "metrics.json").read_text())
            assert lines and metrics["n"] == len(lines)
            assert _finite(metrics) and 0.0 <= metrics["es"] <= 1.0
            # The table's inputs are aggregations of the raw lines only.
            assert metrics["es"] == pytest.approx(sum(x["es"] for x in lines) / len(lines))
            assert (wd / f"results/micro/logs/seed0/evaluate/{task}/{model}/{editor}/k1.log").exists()
            # Every editor's lines score the original model too; only ENN's pre-edit model differs from it.
            assert all("locality_original" in x for x in lines)
            if editor != "enn":
                assert all(x["locality_original"] == x["locality_before"] for x in lines)
            # Reported edits are never the held-out validation edits: the same for every editor of the task.
            if editor in ("mend", "ke", "enn"):
                train = json.loads((res / f"{task}/{model}/{editor}/train.json").read_text())
                assert train["validation_edits"] and not {x["id"] for x in lines} & set(train["validation_edits"])
    for ext in ("md", "tex", "csv"):
        assert (fig / f"table4.{ext}").stat().st_size > 0 and (fig / f"table3.{ext}").stat().st_size > 0
    rows = {r["Editor"]: r for r in csv.DictReader((fig / "table4.csv").open())}
    assert list(rows) == ["FT", "FT+KL", "ENN", "KE", "MEND", "Cache (beyond Table 4)", "FT+L (beyond Table 4)"]
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
    # Table 5: ENN and MEND trained and evaluated with k edits at once; k = 1 is Table 4's editor.
    for editor in ("enn", "mend"):
        train = json.loads((res / f"zsre/bart/{editor}-k5/train.json").read_text())
        assert train["train_config"]["edits_per_step"] == train["train_k"] == 5
        metrics = json.loads((res / f"zsre/bart/{editor}-k5/eval_k5/metrics.json").read_text())
        lines = (res / f"zsre/bart/{editor}-k5/eval_k5/edits.jsonl").read_text().splitlines()
        assert metrics["n_edits"] == 5 and metrics["n"] == len(lines) == 5
        assert {json.loads(x)["batch"] for x in lines} == {0}
    ft5 = json.loads((res / "zsre/bart/ft-k5/eval_k5/metrics.json").read_text())
    assert ft5["editor_kind"] == "ft" and ft5["n_edits"] == ft5["train_k"] == 5 and ft5["n"] == 5
    assert not (res / "zsre/bart/ft-k5/editor.pt").exists()
    rows5 = {r["Editor"]: r for r in csv.DictReader((fig / "table5.csv").open())}
    assert list(rows5) == ["ENN", "MEND", "FT (beyond Table 5)"]
    for row in rows5.values():
        for col in ("ES k=1 (ours)", "ES k=5 (ours)", "DD k=1 (ours)", "DD k=5 (ours)"):
            assert math.isfinite(float(row[col])), col
    assert rows5["MEND"]["ES k=1 (ours)"] == rows["MEND"]["zsRE ES (ours)"]
    assert rows5["FT (beyond Table 5)"]["ES k=1 (ours)"] == rows["FT"]["zsRE ES (ours)"]
    assert rows5["FT (beyond Table 5)"]["ES k=5 (paper)"] == "—"
    assert rows5["MEND"]["ES k=125 (paper)"] == "0.67"
    # Table 6: the six ablations beside MEND, with the built editor networks' parameter counts.
    rows6 = {r["Editor"]: r for r in csv.DictReader((fig / "table6.csv").open())}
    assert list(rows6) == ["No sharing", "No norm", "No ID init", "Only u", "Only δ", "Only smaller", "MEND"]
    for row in rows6.values():
        for col in ("Wikitext ES (ours)", "Wikitext DD (ours)", "zsRE ES (ours)", "zsRE DD (ours)"):
            assert math.isfinite(float(row[col])), col
    params = {
        label: json.loads((res / f"zsre/bart/{ed}/eval_k1/metrics.json").read_text())["editor_parameters"]
        for ed, label in (("mend", "MEND"), ("mend-no_sharing", "No sharing"), ("mend-only_u", "Only u"))
    }
    assert params["No sharing"] > params["MEND"] > params["Only u"] > 0
    # The memory figure (every learned editor of Tables 3 and 4) and the memory probe.
    for ext in ("png", "pdf", "csv"):
        assert (fig / f"figure3_memory.{ext}").stat().st_size > 0
    plotted = list(csv.DictReader((fig / "figure3_memory.csv").open()))
    assert len(plotted) == 3 * 3 + 4 * 2 and all(float(r["plotted_mb"]) > 0 for r in plotted)
    for size in ("micro-gpt2", "micro-bert"):
        probe = json.loads((wd / f"results/micro/memory_probe/{size}.json").read_text())
        assert set(probe["editors"]) == {"mend", "ke", "enn", "ft"}
        assert all(math.isfinite(e["peak_mb"]) and e["peak_mb"] > 0 for e in probe["editors"].values())
    for ext in ("md", "csv", "png", "pdf"):
        assert (fig / f"memory_probe.{ext}").stat().st_size > 0
    # The claims table: one row per claim of the paper, each with a verdict computed from the raw lines.
    claims = list(csv.DictReader((fig / "claims.csv").open()))
    assert len(claims) == 16 and {r["verdict"] for r in claims} <= {"reproduced", "not reproduced", "inconclusive"}
    assert (fig / "claims.md").read_text().count("| T") >= 13
    # The HTML report, written when the run leaves every table and figure in place.
    report = (fig / "report.html").read_text()
    assert "table6.csv" in report and "figure3_memory.png" in report
    # The workflow-level description (workflow/report/workflow.rst), rendered with the run's config.
    assert "Fast Model Editing at Scale" in report and ">micro</tt>, seeds" in report
    # A second run has nothing to do; one table's target re-plans only that table.
    assert "Nothing to be done" in _snakemake(wd, "-n", "--cores", "1").stdout
    for table in ("table4", "table6"):
        md = fig / f"{table}.md"
        kept = md.read_bytes()
        md.unlink()
        assert _job_counts(_snakemake(wd, "-n", "--cores", "1", f"figures/micro/{table}.md").stdout) == {
            table: 1,
            "total": 1,
        }
        md.write_bytes(kept)  # the module's other tests read this run too
    # Nothing half-written: every temporary file or directory of the atomic writers is gone.
    hidden = [p for p in wd.rglob(".*") if ".snakemake" not in p.parts and p.name != ".snakemake_timestamp"]
    assert not hidden, hidden


def test_snakemake_lint_is_clean(tmp_path):
    """`snakemake --lint` finds nothing (its checks read the rule files' text, comments included)."""
    wd = _workdir(tmp_path, "config/tiny.yaml")
    out = _snakemake(wd, "--lint", check=False)
    assert out.returncode == 0 and "Lints for" not in out.stdout + out.stderr, out.stdout[-3000:] + out.stderr[-3000:]
