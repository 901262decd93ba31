"""Report tables: the paper's published numbers and Table 4 rendered from synthetic metrics files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mendrepro.config import KScaling
from mendrepro.report import ablations, batched, paper, tables
from mendrepro.report import cli as report_cli


def _metrics(task: str, editor: str, es: float, dd: float, **extra) -> dict:
    model = {"fever": "bert", "zsre": "bart", "wikitext": "gpt2"}[task]
    record = {
        "task": task,
        "model": model,
        "editor": editor,
        "n_edits": 1,
        "n": 100,
        "es": es,
        "dd": dd,
        "dd_kind": "ppl" if task == "wikitext" else "acc",
        "loc_before": 0.9,
        "loc_after": 0.9 - dd,
        "profile": "tiny",
    }
    record.update(extra)
    return record


def _write(tmp_path: Path, name: str, record: dict) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def metric_files(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path, "zsre_mend", _metrics("zsre", "mend", 0.93, 0.004)),
        _write(tmp_path, "fever_mend", _metrics("fever", "mend", 0.8765, -0.0125, fever_flip_rule="flip p=0.5")),
        _write(tmp_path, "wiki_ft", _metrics("wikitext", "ft", 0.3125, 1.2346)),
        _write(tmp_path, "zsre_cache", _metrics("zsre", "cache", 1.0, 0.0)),
        _write(tmp_path, "zsre_ke", _metrics("zsre", "ke", 0.5, 0.25)),
    ]


# --------------------------------------------------------------------------------------------------------
# paper.py
# --------------------------------------------------------------------------------------------------------
def test_table4_published_values():
    assert paper.TABLE4[("MEND", "FEVER ES")] == ">0.99"
    assert paper.TABLE4[("MEND", "FEVER DD")] == "<0.001"
    assert paper.TABLE4[("MEND", "zsRE ES")] == "0.98"
    assert paper.TABLE4[("MEND", "zsRE DD")] == "0.002"
    assert paper.TABLE4[("MEND", "Wikitext ES")] == "0.86"
    assert paper.TABLE4[("MEND", "Wikitext DD")] == "0.225"
    assert paper.TABLE4[("FT", "Wikitext DD")] == "0.938"
    assert paper.TABLE4[("FT+KL", "FEVER ES")] == "0.64"
    assert paper.TABLE4[("ENN", "Wikitext ES")] == "0.93"
    assert paper.TABLE4[("KE", "FEVER DD")] == "0.004"
    assert len(paper.TABLE4) == 5 * 6


def test_table3_5_6_published_values():
    assert paper.TABLE3[("FT", "GPT-Neo 2.7B ES")] == "0.55"
    assert paper.TABLE3[("MEND", "T5-XL DD")] == "0.001"
    assert paper.TABLE3[("MEND", "T5-XXL DD")] == "<0.001"
    assert paper.TABLE3[("KE", "GPT-J 6B DD")] == "0.068"
    assert paper.TABLE3[("FT+KL", "GPT-J 6B ES")] == "0.36"
    assert len(paper.TABLE3) == 4 * 8
    assert paper.TABLE5[("ENN", paper.table5_column("ES", 125))] == "0.11"
    assert paper.TABLE5[("MEND", paper.table5_column("ES", 25))] == "0.89"
    assert paper.TABLE5[("ENN", paper.table5_column("DD", 1))] == "<0.001"
    assert paper.TABLE5[("MEND", paper.table5_column("DD", 125))] == "0.012"
    assert len(paper.TABLE5) == 2 * 10
    assert paper.TABLE6[("No norm", "Wikitext ES")] == "0.02"
    assert paper.TABLE6[("No ID init", "Wikitext DD")] == "0.898"
    assert paper.TABLE6[("No sharing", "zsRE ES")] == ">0.99"
    assert paper.TABLE6[("Only δ", "Wikitext DD")] == "0.445"
    assert paper.TABLE6[("MEND", "zsRE DD")] == "0.001"
    assert len(paper.TABLE6) == 7 * 4
    assert set(paper.TABLE6_VARIANTS.values()) == set(paper.TABLE6_EDITORS)
    assert paper.paper_value(4, "KE", "Wikitext ES") == "0.25"
    assert paper.paper_value(4, "Cache", "zsRE ES") is None
    with pytest.raises(KeyError):
        paper.paper_value(7, "MEND", "zsRE ES")


def test_parse_published():
    assert paper.parse_published("<0.001") == 0.001
    assert paper.parse_published(">0.99") == 0.99
    assert paper.parse_published("0.98") == 0.98
    assert paper.published_bound("<0.001") == "<"
    assert paper.published_bound(">0.99") == ">"
    assert paper.published_bound("0.195") == "="
    with pytest.raises(ValueError, match="not a published number"):
        paper.parse_published("n/a")
    # every published value parses
    for table in paper.TABLES.values():
        for value in table.values():
            assert 0.0 <= paper.parse_published(value) < 1.0


# --------------------------------------------------------------------------------------------------------
# load_metrics
# --------------------------------------------------------------------------------------------------------
def test_load_metrics(metric_files):
    df = tables.load_metrics(metric_files)
    assert len(df) == 5
    row = df[(df.task == "zsre") & (df.editor == "mend")].iloc[0]
    assert row["es"] == 0.93 and row["dd"] == 0.004 and row["path"] == str(metric_files[0])


def test_load_metrics_missing_file(tmp_path):
    missing = tmp_path / "nope" / "metrics.json"
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        tables.load_metrics([missing])


def test_load_metrics_missing_key(tmp_path):
    record = _metrics("zsre", "mend", 0.9, 0.0)
    del record["dd"], record["n"]
    path = _write(tmp_path, "bad", record)
    with pytest.raises(tables.MetricsError) as info:
        tables.load_metrics([path])
    assert str(path) in str(info.value)
    assert "['n', 'dd']" in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"es": "0.9"}, "'es' must be a number"),
        ({"dd_kind": "loss"}, "'dd_kind' must be one of"),
        ({"n_edits": 1.5}, "'n_edits' must be a non-negative integer"),
        ({"task": ""}, "'task' must be a non-empty string"),
    ],
)
def test_load_metrics_bad_values(tmp_path, change, message):
    path = _write(tmp_path, "bad", {**_metrics("zsre", "mend", 0.9, 0.0), **change})
    with pytest.raises(tables.MetricsError, match=message) as info:
        tables.load_metrics([path])
    assert str(path) in str(info.value)


def test_load_metrics_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(tables.MetricsError, match="broken.json: not valid JSON"):
        tables.load_metrics([path])
    path.write_text("[1, 2]")
    with pytest.raises(tables.MetricsError, match="expected a JSON object"):
        tables.load_metrics([path])


# --------------------------------------------------------------------------------------------------------
# table4
# --------------------------------------------------------------------------------------------------------
def test_table4_cells(metric_files):
    df = tables.table4(tables.load_metrics(metric_files))
    assert list(df.index) == ["FT", "KE", "MEND", "Cache (beyond Table 4)"]
    assert df.index.name == "Editor"
    assert list(df.columns) == tables.table4_columns()
    assert len(df.columns) == 15  # ES and DD with the paper's beside ours, and DD vs original, per task
    assert df.loc["MEND", "zsRE ES (ours)"] == "0.930"
    assert df.loc["MEND", "zsRE DD (ours)"] == "0.004"
    assert df.loc["MEND", "zsRE ES (paper)"] == "0.98"
    assert df.loc["MEND", "zsRE DD (paper)"] == "0.002"
    assert df.loc["MEND", "FEVER ES (ours)"] == "0.876"  # 0.8765 -> 3 decimals
    assert df.loc["MEND", "FEVER DD (ours)"] == "-0.013"
    assert df.loc["MEND", "FEVER ES (paper)"] == ">0.99"
    assert df.loc["MEND", "Wikitext ES (ours)"] == tables.MISSING
    assert df.loc["MEND", "Wikitext DD (paper)"] == "0.225"
    assert df.loc["KE", "zsRE DD (ours)"] == "0.250"
    assert df.loc["KE", "FEVER ES (ours)"] == "—"
    assert df.loc["Cache (beyond Table 4)", "zsRE ES (ours)"] == "1.000"
    assert df.loc["Cache (beyond Table 4)", "zsRE ES (paper)"] == "—"
    assert df.loc["FT", "Wikitext ES (ours)"] == "0.312"  # 0.3125 -> 3 decimals
    assert df.loc["FT", "zsRE ES (ours)"] == "—"
    # editors without any of our results are not shown by default
    assert "FT+KL" not in df.index and "ENN" not in df.index


def test_table4_paper_order_and_paper_only_rows(metric_files):
    df = tables.table4(tables.load_metrics(metric_files), include_paper_only=True)
    assert list(df.index) == ["FT", "FT+KL", "ENN", "KE", "MEND", "Cache (beyond Table 4)"]
    assert df.loc["FT", "Wikitext ES (ours)"] == "0.312"
    assert df.loc["FT", "Wikitext DD (ours)"] == "1.235"
    assert df.loc["FT", "Wikitext DD (paper)"] == "0.938"
    assert df.loc["ENN", "FEVER DD (paper)"] == "0.003"
    assert (df.loc["ENN", [c for c in df.columns if c.endswith("(ours)")]] == "—").all()


def test_table4_ignores_other_models_and_batches(tmp_path, metric_files):
    extra = [
        _write(tmp_path, "t5", {**_metrics("zsre", "enn", 0.1, 0.1), "model": "t5"}),
        _write(tmp_path, "batch", {**_metrics("zsre", "enn", 0.2, 0.2), "n_edits": 25}),
    ]
    df = tables.table4(tables.load_metrics(metric_files + extra))
    assert "ENN" not in df.index


def test_table4_duplicate_cell_is_an_error(tmp_path, metric_files):
    dup = _write(tmp_path, "zsre_mend_again", _metrics("zsre", "mend", 0.5, 0.0))
    with pytest.raises(ValueError, match="zsre_mend_again.json"):
        tables.table4(tables.load_metrics(metric_files + [dup]))


def test_table4_wrong_dd_kind_is_an_error(tmp_path):
    path = _write(tmp_path, "w", {**_metrics("wikitext", "mend", 0.5, 0.1), "dd_kind": "acc"})
    with pytest.raises(tables.MetricsError, match="ppl drawdown"):
        tables.table4(tables.load_metrics([path]))


def test_table4_caption(metric_files):
    metrics = tables.load_metrics(metric_files)
    caption = tables.table4_caption(metrics, profile="tiny")
    assert "profile tiny" in caption
    assert "FEVER edit label: flip p=0.5" in caption
    assert "locality accuracy before − after" in caption
    assert "perplexity after − before" in caption
    assert "exp(token-weighted mean NLL over all locality tokens)" in caption
    assert "edit success on equivalence examples" in caption
    assert "n = 100 edits per cell" in caption
    # FEVER results without the field: the default rule
    no_rule = [p for p in metric_files if "fever" not in p.name]
    no_rule.append(_write(metric_files[0].parent, "fever_ft", _metrics("fever", "ft", 0.5, 0.0)))
    caption = tables.table4_caption(tables.load_metrics(no_rule))
    assert "FEVER edit label: always flip." in caption
    assert "profile tiny" in caption  # from the metrics' "profile" field
    assert "flip the prediction" not in caption  # no raw-line flags, no flip-ES note


def test_table4_caption_gives_fever_es_on_flip_edits(tmp_path):
    files = [
        _write(
            tmp_path, "mend", _metrics("fever", "mend", 0.8, 0.0, fever_flip_rule="release", es_flip=0.6, n_flip=31)
        ),
        _write(tmp_path, "ft", _metrics("fever", "ft", 0.7, 0.0, fever_flip_rule="release", es_flip=0.45, n_flip=31)),
        _write(tmp_path, "z", _metrics("zsre", "mend", 0.9, 0.0)),
    ]
    caption = tables.table4_caption(tables.load_metrics(files), profile="tiny")
    assert (
        "FEVER edit label: release. FEVER ES on the edits that flip the prediction (31 of each cell's edits):"
        in caption
    )
    assert "FT 0.450, MEND 0.600." in caption  # the paper's row order


def test_format_ours():
    assert tables.format_ours(0.93) == "0.930"
    assert tables.format_ours(None) == "—"
    assert tables.format_ours(float("nan")) == "n/a"
    assert tables.format_ours(-0.0001) == "0.000"


# --------------------------------------------------------------------------------------------------------
# write_table and the command line
# --------------------------------------------------------------------------------------------------------
def test_write_table_roundtrip(tmp_path, metric_files):
    metrics = tables.load_metrics(metric_files)
    df = tables.table4(metrics, include_paper_only=True)
    stem = tmp_path / "figures" / "tiny" / "table4"
    written = tables.write_table(df, stem, "A caption with 50% & x_1 − y")
    assert written == [stem.with_suffix(s) for s in (".md", ".tex", ".csv")]
    assert not [p for p in stem.parent.iterdir() if p.name.startswith(".")]  # no temp files left

    md = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == r"*A caption with 50% & x\_1 − y*"
    assert "| MEND" in md and "0.930" in md and ">0.99" in md

    tex = stem.with_suffix(".tex").read_text(encoding="utf-8")
    assert r"\caption{A caption with 50\% \& x\_1 \ensuremath{-} y}" in tex
    assert r"\label{tab:table4}" in tex
    assert r"\textgreater{}0.99" in tex and r"\textless{}0.001" in tex
    assert r"\begin{tabular}" in tex and r"\end{table}" in tex

    back = pd.read_csv(stem.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.index) == list(df.index)
    assert list(back.columns) == list(df.columns)
    pd.testing.assert_frame_equal(back, df, check_names=False)
    assert float(back.loc["MEND", "zsRE ES (ours)"]) == pytest.approx(0.93)
    assert float(back.loc["MEND", "FEVER DD (ours)"]) == pytest.approx(-0.013)
    assert float(back.loc["FT", "Wikitext DD (ours)"]) == pytest.approx(1.235)
    assert back.loc["MEND", "FEVER ES (paper)"] == ">0.99"
    assert paper.parse_published(back.loc["FT+KL", "zsRE DD (paper)"]) == 0.001


def test_write_table_replaces_existing(tmp_path):
    stem = tmp_path / "t"
    df = pd.DataFrame({"A": ["1"]}, index=pd.Index(["x"], name="Editor"))
    tables.write_table(df, stem, "first")
    tables.write_table(df.assign(A=["2"]), stem, "second")
    assert stem.with_suffix(".md").read_text(encoding="utf-8").startswith("*second*")
    assert pd.read_csv(stem.with_suffix(".csv"), index_col=0).loc["x", "A"] == 2


def test_main(tmp_path, metric_files, capsys):
    out = tmp_path / "figs" / "table4"
    rc = report_cli.main(["table4", "--metrics", *map(str, metric_files), "--out", str(out), "--profile", "tiny"])
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(out) + s for s in (".md", ".tex", ".csv")]
    back = pd.read_csv(out.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.index) == ["FT", "KE", "MEND", "Cache (beyond Table 4)"]
    assert math.isclose(float(back.loc["MEND", "zsRE ES (ours)"]), 0.93)
    assert "profile tiny" in out.with_suffix(".md").read_text(encoding="utf-8").splitlines()[0]


def test_main_missing_file(tmp_path, capsys):
    rc = report_cli.main(["table4", "--metrics", str(tmp_path / "absent.json"), "--out", str(tmp_path / "t")])
    assert rc == 1
    assert "absent.json" in capsys.readouterr().err
    assert not (tmp_path / "t.md").exists()


def test_markdown_keeps_three_decimals(tmp_path):
    df = pd.DataFrame({"ES (ours)": ["0.400", "0.000"]}, index=pd.Index(["FT", "MEND"], name="Editor"))
    tables.write_table(df, tmp_path / "t", "caption")
    md = (tmp_path / "t.md").read_text()
    assert "| 0.400 " in md and "| 0.000 " in md


def test_caption_reports_enn_drawdown_against_the_original_model(tmp_path):
    rows = [
        {
            "task": "zsre",
            "model": "bart",
            "editor": "enn",
            "n_edits": 1,
            "n": 10,
            "es": 0.9,
            "dd": 0.01,
            "dd_kind": "acc",
            "dd_original": 0.123,
            "profile": "tiny",
        },
        {
            "task": "zsre",
            "model": "bart",
            "editor": "mend",
            "n_edits": 1,
            "n": 10,
            "es": 0.9,
            "dd": 0.01,
            "dd_kind": "acc",
            "profile": "tiny",
        },
    ]
    paths = []
    for i, r in enumerate(rows):
        paths.append(tmp_path / f"m{i}.json")
        paths[-1].write_text(json.dumps(r))
    metrics = tables.load_metrics(paths)
    caption = tables.table4_caption(metrics, "tiny")
    assert "against the original base model (DD vs original, the column the claims use) it is zsRE 0.123" in caption
    # Its own column: ENN's drawdown against the original beside its DD; MEND's file has none (older runs).
    df = tables.table4(metrics)
    assert df.loc["ENN", "zsRE DD (ours)"] == "0.010" and df.loc["ENN", "zsRE DD vs original (ours)"] == "0.123"
    assert df.loc["MEND", "zsRE DD vs original (ours)"] == tables.MISSING


# --------------------------------------------------------------------------------------------------------
# table3
# --------------------------------------------------------------------------------------------------------
def _metrics3(model: str, editor: str, es: float, dd: float, **extra) -> dict:
    task = {"gptneo": "wikitext", "gptj": "wikitext", "t5xl": "zsre", "t5xxl": "zsre"}[model]
    record = {
        "task": task,
        "model": model,
        "editor": editor,
        "n_edits": 1,
        "n": 40,
        "es": es,
        "dd": dd,
        "dd_kind": "ppl" if task == "wikitext" else "acc",
        "profile": "tiny",
    }
    record.update(extra)
    return record


@pytest.fixture
def table3_files(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path, "neo_mend", _metrics3("gptneo", "mend", 0.8125, 0.0456)),
        _write(tmp_path, "gptj_ft", _metrics3("gptj", "ft", 0.75, 0.5)),
        _write(tmp_path, "t5xl_mend", _metrics3("t5xl", "mend", 0.9, -0.0004)),
        _write(tmp_path, "t5xxl_ke", _metrics3("t5xxl", "ke", 0.02, 0.0)),
        _write(tmp_path, "t5xl_enn", _metrics3("t5xl", "enn", 0.6, 0.01)),
    ]


def test_table3_columns():
    cols = tables.table3_columns()
    assert len(cols) == 16
    assert cols[:4] == [
        "GPT-Neo 2.7B ES (ours)",
        "GPT-Neo 2.7B ES (paper)",
        "GPT-Neo 2.7B DD (ours)",
        "GPT-Neo 2.7B DD (paper)",
    ]
    assert cols[-1] == "T5-XXL DD (paper)"
    assert [c.removesuffix(" (paper)") for c in cols if c.endswith("(paper)")] == list(paper.TABLE3_COLUMNS)
    assert tables.TABLE3_DD_KINDS == {"gptneo": "ppl", "gptj": "ppl", "t5xl": "acc", "t5xxl": "acc"}


def test_table3_cells(table3_files):
    df = tables.table3(tables.load_metrics(table3_files))
    assert list(df.index) == ["FT", "KE", "MEND", "ENN (beyond Table 3)"]
    assert df.index.name == "Editor"
    assert list(df.columns) == tables.table3_columns()
    assert df.loc["MEND", "GPT-Neo 2.7B ES (ours)"] == "0.812"  # 0.8125 -> 3 decimals
    assert df.loc["MEND", "GPT-Neo 2.7B ES (paper)"] == "0.81"
    assert df.loc["MEND", "GPT-Neo 2.7B DD (ours)"] == "0.046"
    assert df.loc["MEND", "GPT-Neo 2.7B DD (paper)"] == "0.057"
    assert df.loc["MEND", "T5-XL ES (ours)"] == "0.900"
    assert df.loc["MEND", "T5-XL DD (ours)"] == "0.000"  # -0.0004 -> no negative zero
    assert df.loc["MEND", "T5-XL DD (paper)"] == "0.001"
    assert df.loc["MEND", "T5-XXL DD (paper)"] == "<0.001"
    assert df.loc["MEND", "GPT-J 6B ES (ours)"] == tables.MISSING
    assert df.loc["MEND", "GPT-J 6B ES (paper)"] == "0.88"
    assert df.loc["FT", "GPT-J 6B ES (ours)"] == "0.750"
    assert df.loc["FT", "GPT-J 6B DD (ours)"] == "0.500"
    assert df.loc["FT", "GPT-J 6B DD (paper)"] == "0.125"
    assert df.loc["FT", "GPT-Neo 2.7B ES (ours)"] == "—"
    assert df.loc["KE", "T5-XXL ES (ours)"] == "0.020"
    assert df.loc["KE", "T5-XXL ES (paper)"] == "0.04"
    assert df.loc["ENN (beyond Table 3)", "T5-XL ES (ours)"] == "0.600"
    assert df.loc["ENN (beyond Table 3)", "T5-XL ES (paper)"] == "—"
    assert "FT+KL" not in df.index


def test_table3_paper_only_rows_and_extra_editors(tmp_path, table3_files):
    cache = _write(tmp_path, "neo_cache", _metrics3("gptneo", "cache", 1.0, 0.0))
    df = tables.table3(tables.load_metrics(table3_files + [cache]), include_paper_only=True)
    assert list(df.index) == ["FT", "FT+KL", "KE", "MEND", "ENN (beyond Table 3)", "Cache (beyond Table 3)"]
    assert df.loc["FT+KL", "GPT-J 6B ES (paper)"] == "0.36"
    assert df.loc["FT+KL", "GPT-Neo 2.7B DD (paper)"] == "0.026"
    assert (df.loc["FT+KL", [c for c in df.columns if c.endswith("(ours)")]] == "—").all()
    assert df.loc["Cache (beyond Table 3)", "GPT-Neo 2.7B ES (ours)"] == "1.000"
    assert (df.loc["Cache (beyond Table 3)", [c for c in df.columns if c.endswith("(paper)")]] == "—").all()


def test_table3_and_table4_select_their_own_rows(tmp_path, table3_files, metric_files):
    extra = [
        _write(tmp_path, "neo_zsre", {**_metrics3("gptneo", "ft", 0.1, 0.1), "task": "zsre", "dd_kind": "acc"}),
        _write(tmp_path, "t5xl_batch", {**_metrics3("t5xl", "ft", 0.2, 0.2), "n_edits": 5}),
        _write(tmp_path, "t5_small", {**_metrics3("t5xl", "ft", 0.3, 0.3), "model": "t5"}),
    ]
    metrics = tables.load_metrics(table3_files + metric_files + extra)
    assert sorted(tables.table3_rows(metrics)["path"]) == sorted(map(str, table3_files))
    assert sorted(tables.table4_rows(metrics)["path"]) == sorted(map(str, metric_files))
    df = tables.table3(metrics)
    assert list(df.index) == ["FT", "KE", "MEND", "ENN (beyond Table 3)"]
    assert df.loc["FT", "T5-XL ES (ours)"] == "—" and df.loc["FT", "GPT-Neo 2.7B ES (ours)"] == "—"
    assert "Cache (beyond Table 3)" not in df.index  # the Table 4 Cache result is not a Table 3 result


def test_table3_duplicate_cell_is_an_error(tmp_path, table3_files):
    dup = _write(tmp_path, "neo_mend_again", _metrics3("gptneo", "mend", 0.5, 0.0))
    with pytest.raises(ValueError, match="same Table 3 cell: gptneo/mend") as info:
        tables.table3(tables.load_metrics(table3_files + [dup]))
    assert "neo_mend_again.json" in str(info.value) and "neo_mend.json" in str(info.value)


@pytest.mark.parametrize(("model", "wrong", "want"), [("gptj", "acc", "ppl"), ("t5xxl", "ppl", "acc")])
def test_table3_wrong_dd_kind_is_an_error(tmp_path, model, wrong, want):
    path = _write(tmp_path, "w", {**_metrics3(model, "mend", 0.5, 0.1), "dd_kind": wrong})
    with pytest.raises(tables.MetricsError, match=f"Table 3 reports {want} drawdown for {model}") as info:
        tables.table3(tables.load_metrics([path]))
    assert str(path) in str(info.value)


def test_table3_caption(table3_files):
    metrics = tables.load_metrics(table3_files)
    caption = tables.table3_caption(metrics)
    assert caption.startswith(
        "Table 3 (Wikitext/GPT-Neo 2.7B, Wikitext/GPT-J 6B, zsRE/T5-XL, zsRE/T5-XXL), one edit at a time;"
    )
    assert "profile tiny" in caption  # from the metrics' "profile" field
    assert "n = 40 edits per cell" in caption
    assert "tiny stand-ins of the same model classes" in caption
    assert "T5 v1.1-style gated" in caption
    assert "not expected to equal the paper's" in caption
    assert "edit success on equivalence examples" in caption
    assert "acc DD (T5-XL, T5-XXL on zsRE) = locality accuracy before − after, on Natural Questions" in caption
    assert "ppl DD (GPT-Neo, GPT-J on Wikitext) = perplexity after − before" in caption
    assert "exp(token-weighted mean NLL over all locality tokens)" in caption
    assert f"Paper values: {paper.CITATION}, Table 3." in caption
    assert "FEVER" not in caption
    full = tables.table3_caption(metrics, profile="full")
    assert "profile full" in full and "tiny stand-ins" not in full
    mixed_n = table3_files + [_write(table3_files[0].parent, "gptj_mend", _metrics3("gptj", "mend", 0.5, 0.1, n=7))]
    assert "n = 7–40 edits per cell" in tables.table3_caption(tables.load_metrics(mixed_n))


def test_main_table3(tmp_path, table3_files, metric_files, capsys):
    from mendrepro import cli  # imports torch and the models: only this test needs it

    out = tmp_path / "figs" / "table3"
    argv = ["table3", "--metrics", *map(str, table3_files + metric_files[:1]), "--out", str(out), "--profile", "tiny"]
    assert cli.main(argv) == 0  # `python -m mendrepro table3 ...` dispatches to the tables CLI
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out) + s for s in (".md", ".tex", ".csv")]
    assert f"warning: {metric_files[0]} is not a Table 3 result" in captured.err
    back = pd.read_csv(out.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.index) == ["FT", "KE", "MEND", "ENN (beyond Table 3)"]
    assert list(back.columns) == tables.table3_columns()
    assert math.isclose(float(back.loc["MEND", "GPT-Neo 2.7B ES (ours)"]), 0.812)
    assert back.loc["MEND", "T5-XXL DD (paper)"] == "<0.001"
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert md.splitlines()[0].startswith("*Table 3 (") and "profile tiny" in md.splitlines()[0]
    tex = out.with_suffix(".tex").read_text(encoding="utf-8")
    assert r"\label{tab:table3}" in tex and r"ENN (beyond Table 3)" in tex and r"\textless{}0.001" in tex

    out2 = tmp_path / "figs" / "table3_all"
    argv = ["table3", "--metrics", *map(str, table3_files), "--out", str(out2), "--show-paper-only"]
    assert report_cli.main(argv) == 0
    back = pd.read_csv(out2.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.index) == ["FT", "FT+KL", "KE", "MEND", "ENN (beyond Table 3)"]


# --------------------------------------------------------------------------------------------------------
# Keys every report shares: editor_kind, train_k, editor_parameters; parameter counts
# --------------------------------------------------------------------------------------------------------
def test_load_metrics_infers_editor_keys_of_older_files(tmp_path):
    old = _write(tmp_path, "old", _metrics("zsre", "mend-k5", 0.9, 0.0, n_edits=5))
    new = _write(tmp_path, "new", _metrics("zsre", "x", 0.9, 0.0, editor_kind="enn", train_k=25, editor_parameters=7))
    df = tables.load_metrics([old, new]).set_index("editor")
    assert df.loc["mend-k5", "editor_kind"] == "mend" and df.loc["mend-k5", "train_k"] == 1
    assert df.loc["x", "editor_kind"] == "enn" and df.loc["x", "train_k"] == 25
    assert df.loc["x", "editor_parameters"] == 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_k": 0}, "'train_k' must be a positive integer"),
        ({"train_k": 2.5}, "'train_k' must be a positive integer"),
        ({"editor_kind": ""}, "'editor_kind' must be a non-empty string"),
        ({"editor_parameters": -1}, "'editor_parameters' must be a non-negative integer"),
    ],
)
def test_load_metrics_bad_editor_keys(tmp_path, change, message):
    path = _write(tmp_path, "bad", {**_metrics("zsre", "mend", 0.9, 0.0), **change})
    with pytest.raises(tables.MetricsError, match=message) as info:
        tables.load_metrics([path])
    assert str(path) in str(info.value)


def test_format_parameters():
    assert tables.format_parameters(1_190_000) == "1.19M"
    assert tables.format_parameters(1_194_999) == "1.19M"
    assert tables.format_parameters(12_345_678) == "12.3M"
    assert tables.format_parameters(999_999) == "1M"
    assert tables.format_parameters(45_600) == "45.6K"
    assert tables.format_parameters(2_500_000_000) == "2.5B"
    assert tables.format_parameters(0) == "0"
    assert tables.format_parameters(None) == tables.MISSING
    assert tables.format_parameters(float("nan")) == tables.MISSING


def test_table4_ignores_editors_trained_with_several_edits(tmp_path, metric_files):
    batched = _write(tmp_path, "k5", _metrics("zsre", "enn-k5", 0.2, 0.2, editor_kind="enn", train_k=5))
    df = tables.table4(tables.load_metrics(metric_files + [batched]))
    assert not any("enn" in label.lower() for label in df.index)


def test_report_commands_are_the_parser_commands():
    from mendrepro.report import TABLE_COMMANDS

    sub = next(a for a in report_cli.build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(TABLE_COMMANDS)


# A report command as `python -m mendrepro` runs it, in a fresh interpreter: which heavy modules did it import?
_RUN_REPORT = """
import runpy, sys
sys.argv = ["mendrepro", *sys.argv[1:]]
try:
    runpy.run_module("mendrepro", run_name="__main__", alter_sys=True)
except SystemExit as e:
    assert e.code == 0, e.code
print("IMPORTED:" + ",".join(m for m in ("torch", "transformers") if m in sys.modules))
"""


def run_report_command(argv: list[str], cwd: Path) -> str:
    """Run ``python -m mendrepro <argv>`` in a subprocess; return the heavy modules it imported ("" if none)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _RUN_REPORT, *argv], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.rsplit("IMPORTED:", 1)[1].strip()


def test_table_commands_do_not_import_torch(tmp_path, metric_files, table5_files):
    table4 = ["table4", "--metrics", *map(str, metric_files), "--out", str(tmp_path / "t4")]
    table5 = ["table5", "--metrics", *map(str, table5_files), "--out", str(tmp_path / "t5")]
    assert run_report_command(table4, tmp_path) == ""
    assert run_report_command(table5, tmp_path) == ""
    assert (tmp_path / "t5.csv").is_file()


# --------------------------------------------------------------------------------------------------------
# table5
# --------------------------------------------------------------------------------------------------------
def _metrics5(kind: str, k: int, es: float, dd: float, **extra) -> dict:
    editor = kind if k == 1 else f"{kind}-k{k}"
    return _metrics("zsre", editor, es, dd, editor_kind=kind, train_k=k, n_edits=k, n=375, **extra)


@pytest.fixture
def table5_files(tmp_path: Path) -> list[Path]:
    return [
        _write(tmp_path, "mend_k1", _metrics5("mend", 1, 0.95, 0.002)),
        _write(tmp_path, "mend_k5", _metrics5("mend", 5, 0.9, 0.004)),
        _write(tmp_path, "mend_k25", _metrics5("mend", 25, 0.7125, 0.0111)),
        _write(tmp_path, "enn_k1", _metrics5("enn", 1, 0.99, 0.0)),
        _write(tmp_path, "enn_k125", _metrics5("enn", 125, 0.1, 0.02)),
    ]


@pytest.fixture
def table5_others(tmp_path: Path) -> list[Path]:
    """Files that are not Table 5 results."""
    return [
        _write(tmp_path, "ke_k1", _metrics("zsre", "ke", 0.5, 0.0)),  # not ENN or MEND
        _write(tmp_path, "mend_eval5", _metrics("zsre", "mend", 0.5, 0.0, n_edits=5)),  # trained with one edit
        _write(tmp_path, "no_norm", _metrics("zsre", "mend-no_norm", 0.5, 0.0)),  # an ablation
        _write(tmp_path, "wiki", _metrics("wikitext", "mend", 0.5, 0.1)),  # another task
        _write(tmp_path, "k10", _metrics5("mend", 10, 0.5, 0.1)),  # not one of the paper's k
    ]


def test_table5_columns():
    cols = batched.table5_columns()
    assert len(cols) == 25
    assert cols[:4] == ["ES k=1 (ours)", "ES k=1 (paper)", "ES k=5 (ours)", "ES k=5 (paper)"]
    assert cols[10:12] == ["DD k=1 (ours)", "DD k=1 (paper)"]
    assert cols[19] == "DD k=125 (paper)"
    assert cols[20:] == [f"DD vs original k={k} (ours)" for k in paper.TABLE5_BATCH_SIZES]
    assert [c.removesuffix(" (paper)") for c in cols if c.endswith("(paper)")] == list(paper.TABLE5_COLUMNS)


# The tiny profile's rule: d_model 128 against BART-base's 768, rounded up (config/tiny.yaml, k_scaling).
TINY_SCALING = KScaling(768, 128, "ceil", (1, 5, 25, 75, 125), (1, 1, 5, 13, 21))


@pytest.mark.parametrize(
    ("scaling", "scaled_columns"),
    [
        (None, []),
        # Each paper k with its scaled k beside it, where they differ (k = 1 scales to itself: no column).
        (
            TINY_SCALING,
            [
                "ES k=5 (scaled: 1) (ours)",
                "ES k=25 (scaled: 5) (ours)",
                "ES k=75 (scaled: 13) (ours)",
                "ES k=125 (scaled: 21) (ours)",
                "DD k=5 (scaled: 1) (ours)",
                "DD k=25 (scaled: 5) (ours)",
                "DD k=75 (scaled: 13) (ours)",
                "DD k=125 (scaled: 21) (ours)",
                "DD vs original k=5 (scaled: 1) (ours)",
                "DD vs original k=25 (scaled: 5) (ours)",
                "DD vs original k=75 (scaled: 13) (ours)",
                "DD vs original k=125 (scaled: 21) (ours)",
            ],
        ),
        # The micro profile declares the rule for its own k only (1 and 5).
        (
            KScaling(768, 16, "ceil", (1, 5), (1, 1)),
            ["ES k=5 (scaled: 1) (ours)", "DD k=5 (scaled: 1) (ours)", "DD vs original k=5 (scaled: 1) (ours)"],
        ),
    ],
)
def test_table5_scaled_columns(scaling, scaled_columns):
    cols = batched.table5_columns(scaling)
    assert [c for c in cols if "(scaled:" in c] == scaled_columns
    assert len(cols) == 25 + len(scaled_columns)
    # Each scaled column sits right after the paper's value at that k.
    for c in scaled_columns:
        name = c.split(" (scaled:")[0]
        before = cols[cols.index(c) - 1]
        assert before in (f"{name} (paper)", f"{name} (ours)"), (c, before)


def test_table5_scaled_and_original_cells(tmp_path, table5_files):
    files = table5_files + [
        # 247 = the largest multiple of 13 in 250 (config/tiny.yaml's n_edits)
        _write(tmp_path, "mend_k13", {**_metrics5("mend", 13, 0.61, 0.03, dd_original=0.03), "n": 247}),
        _write(tmp_path, "enn_k13", {**_metrics5("enn", 13, 0.4, 0.001, dd_original=0.31), "n": 247}),
        _write(tmp_path, "enn_k1_orig", {**_metrics5("enn", 1, 0.99, 0.0), "dd_original": 0.342}),
        _write(tmp_path, "mend_k21", _metrics5("mend", 21, 0.5, 0.04)),  # an older file: no dd_original
    ]
    files = [f for f in files if f.name != "enn_k1.json"]  # enn_k1_orig replaces it
    metrics = tables.load_metrics(files)
    # Without the rule, k = 13 and 21 are no Table 5 cells.
    assert sorted(batched.table5_rows(metrics)["k"]) == [1, 1, 5, 25, 125]
    df = batched.table5(metrics, scaling=TINY_SCALING)
    assert list(df.columns) == batched.table5_columns(TINY_SCALING)
    mend, enn = df.loc["MEND"], df.loc["ENN"]
    assert mend["ES k=75 (ours)"] == tables.MISSING and mend["ES k=75 (scaled: 13) (ours)"] == "0.610"
    assert mend["ES k=75 (paper)"] == "0.78"
    assert mend["ES k=125 (scaled: 21) (ours)"] == "0.500" and mend["DD k=125 (scaled: 21) (ours)"] == "0.040"
    # A scaled k that is a paper k shows that k's cell: k = 25 at 5, k = 5 at 1.
    assert mend["ES k=25 (scaled: 5) (ours)"] == mend["ES k=5 (ours)"] == "0.900"
    assert mend["ES k=5 (scaled: 1) (ours)"] == mend["ES k=1 (ours)"] == "0.950"
    # DD vs original: ENN's own (it trains the base model); an older file without it shows none.
    assert enn["DD vs original k=1 (ours)"] == "0.342" and enn["DD k=1 (ours)"] == "0.000"
    assert enn["DD vs original k=75 (scaled: 13) (ours)"] == "0.310" and enn["DD k=75 (scaled: 13) (ours)"] == "0.001"
    assert mend["DD vs original k=75 (scaled: 13) (ours)"] == "0.030"
    assert mend["DD vs original k=125 (scaled: 21) (ours)"] == tables.MISSING
    caption = batched.table5_caption(metrics, profile="tiny", scaling=TINY_SCALING)
    assert "ceil(k · 128 / 768), at least 1 edits on ours (128 wide" in caption
    assert "5 → 1, 25 → 5, 75 → 13, 125 → 21" in caption
    assert "repeats that k's cells (5 → 1, 25 → 5)" in caption
    assert "k=13: 247 (19 batches)" in caption  # n per k, the scaled k too
    assert "ENN against the original: k=1 0.342; k=13 0.310" in caption
    assert "(scaled:" not in batched.table5_caption(metrics, profile="tiny")


def test_main_table5_with_k_scaling(tmp_path, table5_files, capsys):
    extra = _write(tmp_path, "mend_k21", _metrics5("mend", 21, 0.5, 0.04, dd_original=0.04))
    out = tmp_path / "t5"
    argv = ["table5", "--metrics", *map(str, [*table5_files, extra]), "--out", str(out)]
    assert report_cli.main([*argv, "--k-scaling", TINY_SCALING.to_json()]) == 0
    assert "not a Table 5 result" not in capsys.readouterr().err
    back = pd.read_csv(out.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert back.loc["MEND", "ES k=125 (scaled: 21) (ours)"] == "0.500"
    assert back.loc["MEND", "DD vs original k=125 (scaled: 21) (ours)"] == "0.040"
    # Without the rule the k = 21 file is no Table 5 result, and says so.
    assert report_cli.main(argv) == 0
    assert f"warning: {extra} is not a Table 5 result" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--k-scaling"):
        batched.parse_k_scaling('{"paper_width": 768}')


def test_table5_cells(table5_files, table5_others):
    metrics = tables.load_metrics(table5_files + table5_others)
    assert sorted(batched.table5_rows(metrics)["path"]) == sorted(map(str, table5_files))
    df = batched.table5(metrics)
    assert list(df.index) == ["ENN", "MEND"] and df.index.name == "Editor"
    assert list(df.columns) == batched.table5_columns()
    assert df.loc["MEND", "ES k=25 (ours)"] == "0.713"  # 0.7125 -> 3 decimals
    assert df.loc["MEND", "ES k=25 (paper)"] == "0.89"
    assert df.loc["MEND", "DD k=25 (ours)"] == "0.011"
    assert df.loc["MEND", "DD k=25 (paper)"] == "0.011"
    assert df.loc["MEND", "ES k=1 (ours)"] == "0.950"
    assert df.loc["MEND", "ES k=5 (ours)"] == "0.900"
    assert df.loc["MEND", "ES k=125 (ours)"] == tables.MISSING
    assert df.loc["MEND", "ES k=125 (paper)"] == "0.67"
    assert df.loc["ENN", "ES k=125 (ours)"] == "0.100"
    assert df.loc["ENN", "DD k=125 (ours)"] == "0.020"
    assert df.loc["ENN", "DD k=1 (paper)"] == "<0.001"
    assert df.loc["ENN", "ES k=5 (ours)"] == tables.MISSING


def test_table5_rows_shown(tmp_path, table5_files):
    only_mend = tables.load_metrics(table5_files[:3])
    assert list(batched.table5(only_mend).index) == ["MEND"]
    df = batched.table5(only_mend, include_paper_only=True)
    assert list(df.index) == ["ENN", "MEND"]
    assert (df.loc["ENN", [c for c in df.columns if c.endswith("(ours)")]] == tables.MISSING).all()
    assert df.loc["ENN", "ES k=75 (paper)"] == "0.16"


def test_table5_ft_is_a_row_beyond_the_paper(tmp_path, table5_files):
    ft = [
        _write(tmp_path, "ft_k1", _metrics5("ft", 1, 0.96, 0.017)),
        _write(tmp_path, "ft_k125", _metrics5("ft", 125, 0.845, 0.472)),
    ]
    metrics = tables.load_metrics(table5_files + ft)
    df = batched.table5(metrics)
    assert list(df.index) == ["ENN", "MEND", "FT (beyond Table 5)"]
    row = df.loc["FT (beyond Table 5)"]
    assert row["ES k=125 (ours)"] == "0.845" and row["DD k=125 (ours)"] == "0.472"
    assert row["ES k=1 (ours)"] == "0.960" and row["ES k=25 (ours)"] == tables.MISSING
    assert (row[[c for c in df.columns if c.endswith("(paper)")]] == tables.MISSING).all()
    caption = batched.table5_caption(metrics, profile="tiny-wide")
    assert "FT (beyond Table 5) = fine-tuning on the k edits at once" in caption
    assert tables.TINY_NOTE in caption
    assert "FT (beyond" not in batched.table5_caption(tables.load_metrics(table5_files), profile="tiny")
    # Without FT files, the paper's rows only, as before.
    assert list(batched.table5(tables.load_metrics(table5_files)).index) == ["ENN", "MEND"]


def test_tiny_note_covers_the_studies_read_over_the_tiny_profile():
    assert tables.tiny_note("tiny") == tables.tiny_note("tiny-wide") == tables.tiny_note("tiny-long") != ""
    assert tables.tiny_note("paper") == tables.tiny_note("rehearsal") == tables.tiny_note(None) == ""
    assert tables.tiny_note("tinyish") == ""


def test_table5_older_files_without_editor_keys(tmp_path):
    path = _write(tmp_path, "old", _metrics("zsre", "mend", 0.9, 0.0))  # no editor_kind, no train_k
    assert batched.table5(tables.load_metrics([path])).loc["MEND", "ES k=1 (ours)"] == "0.900"


def test_table5_duplicate_cell_is_an_error(tmp_path, table5_files):
    dup = _write(tmp_path, "mend_k25_again", {**_metrics5("mend", 25, 0.5, 0.0), "editor": "mend-k25b"})
    with pytest.raises(ValueError, match="same Table 5 cell") as info:
        batched.table5(tables.load_metrics(table5_files + [dup]))
    assert "mend/25" in str(info.value)
    assert "mend_k25_again.json" in str(info.value) and "mend_k25.json" in str(info.value)


def test_table5_has_one_model(tmp_path, table5_files):
    other = _write(tmp_path, "t5_k5", {**_metrics5("enn", 5, 0.5, 0.0), "model": "t5xl"})
    with pytest.raises(ValueError, match="one model") as info:
        batched.table5(tables.load_metrics(table5_files + [other]))
    assert "t5_k5.json" in str(info.value)


def test_table5_wrong_dd_kind_is_an_error(tmp_path):
    path = _write(tmp_path, "ppl", {**_metrics5("mend", 5, 0.5, 0.0), "dd_kind": "ppl"})
    with pytest.raises(tables.MetricsError, match="Table 5 reports acc drawdown") as info:
        batched.table5(tables.load_metrics([path]))
    assert str(path) in str(info.value)


def test_table5_caption(table5_files):
    caption = batched.table5_caption(tables.load_metrics(table5_files), profile="tiny")
    assert caption.startswith("Table 5 (zsRE/BART-base), k edits at once")
    assert "profile tiny" in caption
    assert "trained with k edits per step and evaluated with k edits applied at once" in caption
    assert "k=1: 375; k=5: 375 (75 batches); k=25: 375 (15 batches); k=125: 375 (3 batches)" in caption
    assert "averaged over all k edits of each batch" in caption
    assert "measured after the whole batch of k edits is applied" in caption
    assert f"Paper values: {paper.CITATION}, Table 5." in caption


def test_main_table5(tmp_path, table5_files, table5_others, capsys):
    out = tmp_path / "figs" / "table5"
    argv = ["table5", "--metrics", *map(str, table5_files + table5_others), "--out", str(out), "--profile", "tiny"]
    assert report_cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out) + s for s in (".md", ".tex", ".csv")]
    for p in table5_others:
        assert f"warning: {p} is not a Table 5 result" in captured.err
    back = pd.read_csv(out.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.columns) == batched.table5_columns()
    assert back.loc["MEND", "ES k=25 (ours)"] == "0.713"
    assert back.loc["ENN", "ES k=125 (paper)"] == "0.11"
    assert "profile tiny" in out.with_suffix(".md").read_text(encoding="utf-8").splitlines()[0]
    assert r"\label{tab:table5}" in out.with_suffix(".tex").read_text(encoding="utf-8")


def test_main_table5_bad_inputs(tmp_path, table5_files, capsys):
    out = tmp_path / "t5"
    assert report_cli.main(["table5", "--metrics", str(tmp_path / "absent.json"), "--out", str(out)]) == 1
    assert "absent.json" in capsys.readouterr().err
    dup = _write(tmp_path, "dup", {**_metrics5("enn", 125, 0.5, 0.0), "editor": "enn-big"})
    assert report_cli.main(["table5", "--metrics", *map(str, table5_files + [dup]), "--out", str(out)]) == 1
    assert "error: several metrics files for the same Table 5 cell" in capsys.readouterr().err
    assert not out.with_suffix(".md").exists()


# --------------------------------------------------------------------------------------------------------
# table6
# --------------------------------------------------------------------------------------------------------
@pytest.fixture
def table6_files(tmp_path: Path) -> list[Path]:
    files = []
    for task in ("wikitext", "zsre"):
        for i, (editor, params) in enumerate(
            (("mend", 1_190_000), ("mend-no_norm", 1_190_000), ("mend-only_delta", 420_500))
        ):
            base = 0.1 if task == "wikitext" else 0.0
            record = _metrics(task, editor, 0.5 + i / 10 + base, 0.01 * (i + 1), editor_parameters=params, n=60)
            files.append(_write(tmp_path, f"{task}_{editor}", record))
    return files


def test_table6_parameters_published():
    assert set(paper.TABLE6_PARAMETERS) == set(paper.TABLE6_EDITORS)
    assert paper.TABLE6_PARAMETERS["No sharing"] == "O((m+n)²N)"
    assert paper.TABLE6_PARAMETERS["Only δ"] == "O(n²)"
    assert paper.TABLE6_PARAMETERS["Only smaller"] == "O(min(m,n)²)"
    assert paper.TABLE6_PARAMETERS["MEND"] == "O((m+n)²)"


def test_table6_columns():
    cols = ablations.table6_columns()
    assert cols[:3] == ["Wikitext params (ours)", "zsRE params (ours)", "Editor Parameters (paper)"]
    assert cols[3:7] == ["Wikitext ES (ours)", "Wikitext ES (paper)", "Wikitext DD (ours)", "Wikitext DD (paper)"]
    assert cols[-1] == "zsRE DD (paper)" and len(cols) == 11


def test_table6_cells(tmp_path, table6_files):
    others = [
        _write(tmp_path, "enn", _metrics("zsre", "enn", 0.9, 0.0)),  # not a MEND variant
        _write(tmp_path, "k5", _metrics("zsre", "mend-k5", 0.9, 0.0, editor_kind="mend", train_k=5, n_edits=5)),
        _write(tmp_path, "fever", _metrics("fever", "mend", 0.9, 0.0)),  # not a Table 6 task
    ]
    metrics = tables.load_metrics(table6_files + others)
    assert sorted(ablations.table6_rows(metrics)["path"]) == sorted(map(str, table6_files))
    df = ablations.table6(metrics)
    assert list(df.index) == ["No norm", "Only δ", "MEND"]  # the paper's order
    assert list(df.columns) == ablations.table6_columns()
    assert df.loc["MEND", "Wikitext ES (ours)"] == "0.600"
    assert df.loc["MEND", "Wikitext ES (paper)"] == "0.86"
    assert df.loc["MEND", "Wikitext DD (ours)"] == "0.010"
    assert df.loc["Only δ", "zsRE ES (ours)"] == "0.700"
    assert df.loc["Only δ", "zsRE DD (ours)"] == "0.030"
    assert df.loc["Only δ", "zsRE DD (paper)"] == "0.001"
    assert df.loc["No norm", "Wikitext ES (paper)"] == "0.02"
    assert df.loc["MEND", "Wikitext params (ours)"] == "1.19M"
    assert df.loc["Only δ", "zsRE params (ours)"] == "420K"  # 420500 -> 3 significant digits
    assert df.loc["Only δ", "Editor Parameters (paper)"] == "O(n²)"
    assert df.loc["MEND", "Editor Parameters (paper)"] == "O((m+n)²)"


def test_table6_paper_only_rows_and_missing_parameters(tmp_path):
    path = _write(tmp_path, "old", _metrics("zsre", "mend-no_sharing", 0.9, 0.0))  # no editor_parameters
    df = ablations.table6(tables.load_metrics([path]), include_paper_only=True)
    assert list(df.index) == list(paper.TABLE6_EDITORS)
    assert df.loc["No sharing", "zsRE ES (ours)"] == "0.900"
    assert df.loc["No sharing", "zsRE params (ours)"] == tables.MISSING
    assert df.loc["No sharing", "Wikitext params (ours)"] == tables.MISSING
    assert df.loc["No sharing", "Editor Parameters (paper)"] == "O((m+n)²N)"
    assert df.loc["Only smaller", "Editor Parameters (paper)"] == "O(min(m,n)²)"
    assert df.loc["Only u", "Wikitext DD (paper)"] == "0.559"


def test_table6_duplicate_cell_is_an_error(tmp_path, table6_files):
    dup = _write(tmp_path, "again", _metrics("zsre", "mend-no_norm", 0.5, 0.0))
    with pytest.raises(ValueError, match="same Table 6 cell: zsre/mend-no_norm") as info:
        ablations.table6(tables.load_metrics(table6_files + [dup]))
    assert "again.json" in str(info.value)


def test_table6_caption(table6_files):
    caption = ablations.table6_caption(tables.load_metrics(table6_files), profile="tiny")
    assert caption.startswith("Table 6 (MEND ablations; Wikitext/distilGPT-2, zsRE/BART-base), one edit at a time")
    assert "profile tiny" in caption and "n = 60 edits per cell" in caption
    assert "ppl DD (Wikitext) = perplexity after − before" in caption
    assert "acc DD (zsRE) = locality accuracy before − after" in caption
    assert "m, n = input and output width of an edited layer and N = number of edited layers" in caption
    assert f"Paper values: {paper.CITATION}, Table 6." in caption


def test_main_table6(tmp_path, table6_files, capsys):
    out = tmp_path / "table6"
    argv = ["table6", "--metrics", *map(str, table6_files), "--out", str(out)]
    assert report_cli.main([*argv, "--profile", "tiny"]) == 0
    assert capsys.readouterr().out.split() == [str(out) + s for s in (".md", ".tex", ".csv")]
    back = pd.read_csv(out.with_suffix(".csv"), index_col=0, dtype=str, keep_default_na=False)
    assert list(back.index) == ["No norm", "Only δ", "MEND"]
    assert back.loc["MEND", "zsRE params (ours)"] == "1.19M"
    tex = out.with_suffix(".tex").read_text(encoding="utf-8")
    assert r"Only \ensuremath{\delta}" in tex and r"O((m+n)\ensuremath{^2})" in tex
    assert report_cli.main(["table6", "--metrics", str(tmp_path / "absent.json"), "--out", str(out)]) == 1
    assert "absent.json" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------
# Several seeds of one cell: the mean over seeds, with a 95% half-width
# --------------------------------------------------------------------------------------------------------
def test_two_seeds_of_one_cell_give_the_mean_with_plus_minus(tmp_path, metric_files):
    seeds = [
        _write(tmp_path, "zsre_mend_s0", _metrics("zsre", "mend", 0.85, 0.004, seed=0)),
        _write(tmp_path, "zsre_mend_s1", _metrics("zsre", "mend", 0.89, 0.002, seed=1)),
    ]
    others = [p for p in metric_files if p.name != "zsre_mend.json"]
    metrics = tables.load_metrics(others + seeds)
    row = metrics[(metrics.task == "zsre") & (metrics.editor == "mend")].iloc[0]
    assert row["n_seeds"] == 2 and row["seeds"] == (0, 1)
    assert row["paths"] == tuple(map(str, seeds))
    assert row["es"] == pytest.approx(0.87) and row["dd"] == pytest.approx(0.003)
    # ± = 1.96·sd/√n over seeds: sd of (0.85, 0.89) = 0.02·√2
    assert row["es_pm"] == pytest.approx(1.96 * 0.02 * math.sqrt(2) / math.sqrt(2))
    df = tables.table4(metrics)
    assert df.loc["MEND", "zsRE ES (ours)"] == "0.870±0.039"
    assert df.loc["MEND", "zsRE DD (ours)"] == "0.003±0.002"
    assert df.loc["MEND", "zsRE ES (paper)"] == "0.98"
    assert df.loc["MEND", "FEVER ES (ours)"] == "0.876"  # one seed: as before (0.8765)
    caption = tables.table4_caption(metrics, profile="tiny")
    assert "mean over seeds [0, 1]" in caption and "1.96·sd/√n" in caption
    assert "cells of one seed have no ±" in caption
    # one seed, with or without the key: exactly today's output
    assert "seeds" not in tables.table4_caption(tables.load_metrics(metric_files), profile="tiny")
    single = [_write(tmp_path, "zsre_mend_only_s1", _metrics("zsre", "mend", 0.93, 0.004, seed=1))]
    assert tables.table4(tables.load_metrics(others + single)).equals(tables.table4(tables.load_metrics(metric_files)))


def test_same_seed_twice_is_still_a_duplicate_cell(tmp_path, metric_files):
    dup = [
        _write(tmp_path, "a", _metrics("zsre", "mend", 0.5, 0.0, seed=1)),
        _write(tmp_path, "b", _metrics("zsre", "mend", 0.6, 0.0, seed=1)),
    ]
    with pytest.raises(ValueError, match="same Table 4 cell") as info:
        tables.table4(tables.load_metrics(dup))
    assert "a.json" in str(info.value) and "b.json" in str(info.value)
    bad = _write(tmp_path, "c", _metrics("zsre", "mend", 0.6, 0.0, seed="one"))
    with pytest.raises(tables.MetricsError, match="'seed' must be an integer"):
        tables.load_metrics([bad])


def test_seeds_in_tables_5_and_6_and_ignored_files(tmp_path, table5_files, capsys):
    seeds = [
        _write(tmp_path, f"mend_k5_s{s}", _metrics5("mend", 5, es, 0.004, seed=s)) for s, es in ((1, 0.8), (2, 0.9))
    ]
    files = [p for p in table5_files if p.name != "mend_k5.json"] + seeds
    metrics = tables.load_metrics(files)
    assert batched.table5(metrics).loc["MEND", "ES k=5 (ours)"] == "0.850±0.098"
    assert batched.table5(metrics).loc["MEND", "ES k=25 (ours)"] == "0.713"
    assert "mean over seeds [0, 1, 2]" in batched.table5_caption(metrics)
    t6 = [_write(tmp_path, f"t6_s{s}", _metrics("zsre", "mend-no_norm", 0.5 + s / 10, 0.0, seed=s)) for s in (0, 1)]
    assert ablations.table6(tables.load_metrics(t6)).loc["No norm", "zsRE ES (ours)"] == "0.550±0.098"
    # files of an ignored cell are named one by one
    wiki = [_write(tmp_path, f"wiki_s{s}", _metrics("wikitext", "mend", 0.5, 0.1, seed=s)) for s in (0, 1)]
    out = tmp_path / "t5"
    assert report_cli.main(["table5", "--metrics", *map(str, files + wiki), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {wiki[0]} is not a Table 5 result" in err and f"warning: {wiki[1]} is not" in err
