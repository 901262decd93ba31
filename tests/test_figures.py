"""Memory reports: the memory figure from training summaries, the memory-probe table and chart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_tables import run_report_command  # tests/ is on sys.path (no __init__.py)

from mendrepro.report import cli as report_cli
from mendrepro.report import figures, tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"


def _write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record))
    return path


def _summary(task: str, model: str, editor: str, peak: float, baseline: float | None = 500.0, **extra) -> dict:
    memory = {"peak_mb": peak, "kind": extra.pop("kind", "cpu_peak_rss")}
    if baseline is not None:
        memory["baseline_mb"] = baseline
    record = {"task": task, "model": model, "editor": editor, "memory": memory, "profile": "tiny", "steps": 10}
    record["seconds"] = 1.0
    record.update(extra)
    return record


@pytest.fixture
def summaries(tmp_path: Path) -> list[Path]:
    files = []
    for task, model in (("wikitext", "gpt2"), ("zsre", "bart"), ("zsre", "t5xl")):
        for i, editor in enumerate(("enn", "mend", "ke")):
            record = _summary(task, model, editor, 600.0 + 100 * i, editor_kind=editor, train_k=1)
            files.append(_write(tmp_path / f"{task}_{model}_{editor}.json", record))
    return files


@pytest.fixture
def not_in_figure(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path / "k5.json", _summary("zsre", "bart", "mend-k5", 900.0, train_k=5)),
        _write(tmp_path / "variant.json", _summary("zsre", "bart", "mend-no_norm", 900.0)),
    ]


# --------------------------------------------------------------------------------------------------------
# figure3-memory
# --------------------------------------------------------------------------------------------------------
def test_figure3_memory_data(summaries, not_in_figure):
    loaded = figures.load_train_summaries(summaries + not_in_figure)
    assert len(loaded) == 11
    assert loaded.set_index("editor").loc["mend-k5", "editor_kind"] == "mend"  # inferred from the id
    data = figures.figure3_memory_data(loaded)
    assert list(data.columns) == figures.FIGURE3_COLUMNS
    assert len(data) == 9
    assert list(dict.fromkeys(data["task"])) == ["zsre", "wikitext"]  # the paper's panel order, tasks present
    zsre_bart = data[(data["task"] == "zsre") & (data["model"] == "bart")]
    assert list(zsre_bart["editor_label"]) == ["MEND", "KE", "ENN"]
    enn = zsre_bart.set_index("editor").loc["enn"]
    assert enn["peak_mb"] == 600.0 and enn["baseline_mb"] == 500.0 and enn["plotted_mb"] == 100.0
    assert figures.figure3_memory_ylabel(figures.figure3_memory_rows(loaded)) == (
        "peak RSS above the pre-model baseline (MiB), CPU"
    )


def test_figure3_memory_labels(tmp_path):
    cuda = [
        _write(tmp_path / "c.json", _summary("zsre", "bart", "mend", 80.0, baseline=0.0, kind="cuda_max_allocated"))
    ]
    rows = figures.figure3_memory_rows(figures.load_train_summaries(cuda))
    assert figures.figure3_memory_ylabel(rows) == "CUDA max allocated (MiB)"
    old = [_write(tmp_path / "old.json", _summary("zsre", "bart", "mend", 800.0, baseline=None))]
    loaded = figures.load_train_summaries(old)
    assert loaded.loc[0, "baseline_mb"] == 0.0 and not loaded.loc[0, "has_baseline"]
    assert figures.figure3_memory_data(loaded).loc[0, "plotted_mb"] == 800.0
    assert figures.figure3_memory_ylabel(figures.figure3_memory_rows(loaded)) == "peak RSS (MiB), CPU"
    new = _write(tmp_path / "new.json", _summary("fever", "bert", "mend", 800.0))
    mixed = figures.figure3_memory_rows(figures.load_train_summaries(old + [new]))
    assert figures.figure3_memory_ylabel(mixed) == "peak RSS (MiB), CPU; pre-model baseline subtracted where recorded"


def test_main_figure3_memory(tmp_path, summaries, not_in_figure, capsys):
    out = tmp_path / "figs" / "figure3_memory"
    argv = ["figure3-memory", "--train-metrics", *map(str, summaries + not_in_figure), "--out", str(out)]
    assert report_cli.main([*argv, "--profile", "tiny"]) == 0
    captured = capsys.readouterr()
    written = [out.with_suffix(s) for s in (".png", ".pdf", ".csv")]
    assert captured.out.split() == list(map(str, written))
    for p in not_in_figure:
        assert f"warning: {p} is not in the memory figure" in captured.err
    assert out.with_suffix(".png").read_bytes().startswith(PNG_MAGIC)
    assert out.with_suffix(".pdf").read_bytes().startswith(PDF_MAGIC)
    assert all(p.stat().st_size > 1000 for p in written[:2])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary files left
    back = pd.read_csv(out.with_suffix(".csv"))
    assert len(back) == 9
    assert set(zip(back["task"], back["model"], back["editor"], strict=True)) == {
        (t, m, e) for t, m in (("wikitext", "gpt2"), ("zsre", "bart"), ("zsre", "t5xl")) for e in ("mend", "ke", "enn")
    }
    assert back.set_index(["model", "editor"]).loc[("t5xl", "ke"), "plotted_mb"] == 300.0


def test_figure3_memory_mixed_kinds_is_an_error(tmp_path, summaries, capsys):
    cuda = _write(tmp_path / "gpu.json", _summary("fever", "bert", "mend", 80.0, kind="cuda_max_allocated"))
    out = tmp_path / "fig"
    assert report_cli.main(["figure3-memory", "--train-metrics", *map(str, summaries + [cuda]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: the training summaries mix memory kinds" in err
    assert "gpu.json" in err and str(summaries[0]) in err
    assert not list(tmp_path.glob("fig.*"))


def test_figure3_memory_bad_inputs(tmp_path, summaries, capsys):
    out = str(tmp_path / "fig")
    assert report_cli.main(["figure3-memory", "--train-metrics", str(tmp_path / "absent.json"), "--out", out]) == 1
    assert "training summary file not found" in capsys.readouterr().err
    bad = _write(tmp_path / "bad.json", _summary("zsre", "bart", "mend", 1.0, kind="rss"))
    with pytest.raises(tables.MetricsError, match="memory.kind must be one of") as info:
        figures.load_train_summaries([bad])
    assert "bad.json" in str(info.value)
    no_memory = _write(tmp_path / "nomem.json", {"task": "zsre", "model": "bart", "editor": "mend"})
    with pytest.raises(tables.MetricsError, match="nomem.json: key 'memory' must be an object"):
        figures.load_train_summaries([no_memory])
    dup = _write(tmp_path / "dup.json", _summary("zsre", "bart", "mend", 1.0))
    assert report_cli.main(["figure3-memory", "--train-metrics", *map(str, summaries + [dup]), "--out", out]) == 1
    assert "same bar (task/model/editor): zsre/bart/mend" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# memory-probe-report
# --------------------------------------------------------------------------------------------------------
def _probe(size: str, params: int, kind: str = "cpu_peak_rss_delta") -> dict:
    editors = {
        editor: {"peak_mb": 100.0 * (i + 1), "seconds": 0.5 + i, "editor_params": 1000 * i, "measured": "one step"}
        for i, editor in enumerate(("ft", "enn", "ke", "mend"))
    }
    return {
        "size": size,
        "arch": "gpt2",
        "family": "lm",
        "params": params,
        "device": "cpu",
        "memory_kind": kind,
        "threads": 1,
        "torch": "2.3.1",
        "editors": editors,
    }


@pytest.fixture
def probes(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path / "bert.json", _probe("bert-base", 110_000_000)),
        _write(tmp_path / "distil.json", _probe("distilgpt2", 82_000_000)),
    ]


def test_probe_table(probes):
    loaded = figures.load_probes(probes)
    df = figures.probe_table(loaded)
    assert df.index.name == "Size"
    assert list(df.columns) == figures.PROBE_TABLE_COLUMNS
    assert list(df.index) == ["distilgpt2"] * 4 + ["bert-base"] * 4  # by parameter count
    assert list(df["Editor"][:4]) == ["MEND", "KE", "ENN", "FT"]
    mend = df.iloc[0]
    assert (mend["Peak MiB"], mend["Seconds"], mend["Editor params"]) == ("400.0", "3.50", "3K")
    assert mend["Model params"] == "82M" and mend["Device"] == "cpu" and mend["Memory kind"] == "cpu_peak_rss_delta"
    caption = figures.probe_caption(loaded, "tiny")
    assert "profile tiny" in caption and "torch 2.3.1" in caption and "1 CPU thread" in caption
    assert "peak RSS above the pre-model baseline (MiB), CPU" in caption


def test_main_memory_probe_report(tmp_path, probes, capsys):
    out = tmp_path / "figs" / "memory_probe"
    argv = ["memory-probe-report", "--probe", *map(str, probes), "--out", str(out)]
    assert report_cli.main([*argv, "--profile", "tiny"]) == 0
    written = [out.with_suffix(s) for s in (".md", ".csv", ".png", ".pdf")]
    assert capsys.readouterr().out.split() == list(map(str, written))
    assert all(p.stat().st_size > 0 for p in written)
    assert out.with_suffix(".png").read_bytes().startswith(PNG_MAGIC)
    assert out.with_suffix(".pdf").read_bytes().startswith(PDF_MAGIC)
    back = pd.read_csv(out.with_suffix(".csv"), dtype=str)
    assert len(back) == 8 and list(back.columns) == ["Size", *figures.PROBE_TABLE_COLUMNS]
    assert back.iloc[0]["Size"] == "distilgpt2" and back.iloc[0]["Editor"] == "MEND"
    assert out.with_suffix(".md").read_text(encoding="utf-8").startswith("*Memory probe (profile tiny)")


def test_memory_probe_bad_inputs(tmp_path, probes, capsys):
    out = tmp_path / "probe"
    gpu = _write(tmp_path / "gpu.json", _probe("gpt-j", 6_000_000_000, kind="cuda_max_allocated_delta"))
    assert report_cli.main(["memory-probe-report", "--probe", *map(str, probes + [gpu]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "mix memory kinds" in err and "gpu.json" in err
    assert not list(tmp_path.glob("probe.*"))
    again = _write(tmp_path / "again.json", _probe("bert-base", 110_000_000))
    assert report_cli.main(["memory-probe-report", "--probe", *map(str, probes + [again]), "--out", str(out)]) == 1
    assert "same size: bert-base" in capsys.readouterr().err
    assert report_cli.main(["memory-probe-report", "--probe", str(tmp_path / "absent.json"), "--out", str(out)]) == 1
    assert "absent.json" in capsys.readouterr().err
    record = _probe("x", 1)
    del record["editors"]["mend"]["seconds"]
    with pytest.raises(tables.MetricsError, match="editors.mend lacks 'seconds'"):
        figures.load_probes([_write(tmp_path / "x.json", record)])


def test_figure_commands_do_not_import_torch(tmp_path, summaries, probes):
    figure = ["figure3-memory", "--train-metrics", *map(str, summaries), "--out", str(tmp_path / "f")]
    probe = ["memory-probe-report", "--probe", *map(str, probes), "--out", str(tmp_path / "p")]
    assert run_report_command(figure, tmp_path) == ""
    assert run_report_command(probe, tmp_path) == ""
    assert (tmp_path / "f.png").is_file() and (tmp_path / "p.png").is_file()
