"""The claims table: bootstrap intervals and verdicts on synthetic per-edit records."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mendrepro.report import claims, tables
from mendrepro.report import cli as report_cli

MODEL = {"fever": "bert", "zsre": "bart", "wikitext": "gpt2", "t5xl": "t5xl"}
DD_KIND = {"fever": "acc", "zsre": "acc", "wikitext": "ppl"}
N_LOC = 3

TABLES_FULL = {
    "table3": {
        "experiments": [
            {"task": "wikitext", "model": "gptneo"},
            {"task": "wikitext", "model": "gptj"},
            {"task": "zsre", "model": "t5xl"},
            {"task": "zsre", "model": "t5xxl"},
        ],
        "editors": ["ft", "ftkl", "ke", "mend"],
    },
    "table4": {
        "experiments": [
            {"task": "fever", "model": "bert"},
            {"task": "zsre", "model": "bart"},
            {"task": "wikitext", "model": "gpt2"},
        ],
        "editors": ["ft", "ftkl", "enn", "ke", "mend", "cache"],
    },
    "table5": {
        "experiments": [{"task": "zsre", "model": "bart"}],
        "editors": ["enn", "mend"],
        "batches": [{"k": 1}, {"k": 5}, {"k": 25}, {"k": 125}],
        "n_edits": 125,
    },
    "table6": {
        "experiments": [{"task": "wikitext", "model": "gpt2"}, {"task": "zsre", "model": "bart"}],
        "editors": [
            "mend-no_sharing",
            "mend-no_norm",
            "mend-no_id_init",
            "mend-only_u",
            "mend-only_delta",
            "mend-only_smaller",
            "mend",
        ],
    },
}


def _locality(task: str, edit: int, dd_kind: str) -> dict:
    """The shared locality examples of one edit (the same for every editor of a (task, model))."""
    rng = np.random.default_rng(zlib.crc32(f"{task}-{edit}".encode()))
    if dd_kind == "ppl":
        tokens = rng.integers(4, 12, N_LOC)
        return {"nll": (tokens * 2.0 + rng.random(N_LOC)).tolist(), "tokens": tokens.tolist()}
    return {"acc": (rng.random(N_LOC) < 0.8).astype(float).tolist(), "nll": rng.random(N_LOC).tolist()}


def _records(
    task: str,
    es: np.ndarray,
    *,
    ids: list | None = None,
    dd_shift: float = 0.0,
    before_shift: float = 0.0,
    original: bool = True,
    nll: bool = True,
    k: int = 1,
) -> list[dict]:
    """One record per edit: ``es`` as given; locality after the edit worse by ``dd_shift`` (ppl: NLL per token;
    acc: the first ``round(dd_shift·N_LOC)`` examples flipped to wrong), the pre-edit model's NLL above the
    original's by ``before_shift``."""
    dd_kind = DD_KIND[task]
    ids = ids if ids is not None else list(range(len(es)))
    out = []
    for n, (i, e) in enumerate(zip(ids, es, strict=True)):
        orig = _locality(task, i, dd_kind)
        before = {key: list(v) for key, v in orig.items()}
        before["nll"] = [x + before_shift for x in orig["nll"]]
        after = {key: list(v) for key, v in before.items()}
        if dd_kind == "ppl":
            after["nll"] = [x + dd_shift * t for x, t in zip(before["nll"], before["tokens"], strict=True)]
        else:
            flips = round(dd_shift * N_LOC)
            after["acc"] = [0.0 if j < flips else a for j, a in enumerate(before["acc"])]
        if not nll and dd_kind == "acc":
            before.pop("nll"), after.pop("nll"), orig.pop("nll")
        record = {
            "id": f"{task}-{i}",
            "batch": n // k,
            "k": k,
            "es": float(e),
            "locality_before": before,
            "locality_after": after,
            "seconds": 0.01,
            "memory": {"peak_mb": 1.0, "kind": "cpu_peak_rss"},
        }
        if original:
            record["locality_original"] = orig
        out.append(record)
    return out


def write_run(
    root: Path,
    task: str,
    model: str,
    editor: str,
    es,
    *,
    k: int = 1,
    seed: int | None = 0,
    order: list[int] | None = None,
    **kw,
) -> Path:
    """metrics.json and edits.jsonl of one run; ``order`` permutes the lines (pairing is by id, not position)."""
    es = np.asarray(es, dtype=float)
    records = _records(task, es, k=k, **kw)
    if order is not None:
        records = [records[i] for i in order]
    d = root / task / model / editor / f"seed{seed}" / f"eval_k{k}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "edits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics = {
        "task": task,
        "model": model,
        "editor": editor,
        "editor_kind": editor.split("-", 1)[0],
        "n_edits": k,
        "train_k": k,
        "n": len(records),
        "es": float(es.mean()),
        "dd": 0.0,
        "dd_kind": DD_KIND[task],
        "profile": "tiny",
    }
    if seed is not None:
        metrics["seed"] = seed
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d / "metrics.json"


def _table(runs: claims.Runs, cfg: dict, only: str, **kw) -> pd.Series:
    df = claims.claims_table(runs, cfg, only=[only], **kw)
    assert len(df) == 1
    return df.iloc[0]


TABLE4_ZSRE = {"table4": {"experiments": [{"task": "zsre", "model": "bart"}], "editors": ["ft", "ftkl", "mend"]}}


def _t42(tmp_path: Path, mend, ft, ftkl, **kw) -> pd.Series:
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", mend),
        write_run(tmp_path, "zsre", "bart", "ft", ft),
        write_run(tmp_path, "zsre", "bart", "ftkl", ftkl),
    ]
    return _table(claims.load_runs(paths), TABLE4_ZSRE, "T4.2", **kw)


# --------------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------------
def test_clear_ordering_is_reproduced(tmp_path):
    rng = np.random.default_rng(0)
    row = _t42(tmp_path, rng.random(100) * 0.2 + 0.8, rng.random(100) * 0.3, rng.random(100) * 0.3)
    assert row["verdict"] == claims.REPRODUCED
    assert 0 < row["ci_low"] <= row["estimate"] <= row["ci_high"]
    assert row["ours"].startswith("zsre: MEND 0.")
    assert "Table 4 ES: FEVER: MEND >0.99 vs FT 0.76, FT+KL 0.64" in row["paper"]  # from report/paper.py


def test_reverse_ordering_is_not_reproduced(tmp_path):
    rng = np.random.default_rng(1)
    row = _t42(tmp_path, rng.random(100) * 0.3, rng.random(100) * 0.2 + 0.8, rng.random(100) * 0.3)
    assert row["verdict"] == claims.NOT_REPRODUCED
    assert row["ci_high"] < 0


def test_identical_noise_is_inconclusive(tmp_path):
    rng = np.random.default_rng(2)
    draw = lambda: (rng.random(200) < 0.5).astype(float)  # noqa: E731
    row = _t42(tmp_path, draw(), draw(), np.zeros(200))  # MEND and FT: the same distribution, independent draws
    assert row["verdict"] == claims.INCONCLUSIVE
    assert row["ci_low"] < 0 < row["ci_high"]


def test_interval_depends_on_the_rng_seed_only(tmp_path):
    rng = np.random.default_rng(3)
    es = [rng.random(50) for _ in range(3)]
    a = _t42(tmp_path, *es, seed=5)
    b = _t42(tmp_path, *es, seed=5)
    c = _t42(tmp_path, *es, seed=6)
    assert (a["ci_low"], a["ci_high"]) == (b["ci_low"], b["ci_high"]) != (c["ci_low"], c["ci_high"])
    assert a["estimate"] == c["estimate"]


@pytest.mark.parametrize(
    ("region", "lo", "hi", "want"),
    [
        (claims.Region(">"), 0.1, 0.2, claims.REPRODUCED),
        (claims.Region(">"), -0.1, 0.2, claims.INCONCLUSIVE),
        (claims.Region(">"), -0.2, 0.0, claims.NOT_REPRODUCED),
        (claims.Region(">"), 0.0, 0.0, claims.NOT_REPRODUCED),
        (claims.Region("≥"), 0.0, 0.0, claims.REPRODUCED),
        (claims.Region("≥"), -0.1, 0.0, claims.INCONCLUSIVE),
        (claims.Region("<", 0.5), 0.1, 0.49, claims.REPRODUCED),
        (claims.Region("<", 0.5), 0.5, 0.7, claims.NOT_REPRODUCED),
        (claims.Region("≤", 0.05), 0.0, 0.05, claims.REPRODUCED),
        (claims.Region("≤", 0.05), 0.06, 0.07, claims.NOT_REPRODUCED),
        (claims.Region("within", 0.05), -0.04, 0.05, claims.REPRODUCED),
        (claims.Region("within", 0.05), -0.04, 0.06, claims.INCONCLUSIVE),
        (claims.Region("within", 0.05), 0.06, 0.2, claims.NOT_REPRODUCED),
        (claims.Region("within", 0.05), -0.3, -0.06, claims.NOT_REPRODUCED),
    ],
)
def test_region_verdicts(region, lo, hi, want):
    assert region.verdict(lo, hi) == want


def test_several_parts_combine_and_show_the_least_favourable(tmp_path):
    rng = np.random.default_rng(4)
    cfg = {
        "table4": {
            "experiments": [{"task": "zsre", "model": "bart"}, {"task": "fever", "model": "bert"}],
            "editors": ["ft", "ftkl", "mend"],
        }
    }
    paths = []
    for task, mend in (("zsre", 0.9), ("fever", 0.55)):
        paths.append(write_run(tmp_path, task, MODEL[task], "mend", (rng.random(150) < mend).astype(float)))
        for ed in ("ft", "ftkl"):
            paths.append(write_run(tmp_path, task, MODEL[task], ed, (rng.random(150) < 0.5).astype(float)))
    row = _table(claims.load_runs(paths), cfg, "T4.2")
    assert row["verdict"] == claims.INCONCLUSIVE  # zsre reproduced, fever not clear
    assert "zsre: MEND" in row["ours"] and "fever: MEND" in row["ours"]
    assert "estimate and interval: fever" in row["notes"]
    assert row["ci_low"] < 0 < row["ci_high"]


# --------------------------------------------------------------------------------------------------------
# The statistics equal the evaluation's aggregation on the full sample
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["wikitext", "zsre"])
def test_pooled_dd_and_es_equal_evaluate_aggregate(tmp_path, task):
    from mendrepro.evaluate import aggregate  # imports torch: fine in a test

    rng = np.random.default_rng(5)
    es = rng.random(40)
    path = write_run(tmp_path, task, MODEL[task], "mend", es, dd_shift=0.34)
    runs = claims.load_runs([path])
    sample = runs.sample(task, MODEL[task], ["mend"])
    boot = claims.Boot(np.random.default_rng(0), 50)
    records = [json.loads(line) for line in path.with_name("edits.jsonl").read_text().splitlines()]
    want = aggregate(records, "lm" if task == "wikitext" else "seq2seq")
    assert boot.dd(sample, "mend")[0] == pytest.approx(want["dd"], rel=1e-12, abs=1e-12)
    assert boot.es(sample, "mend")[0] == pytest.approx(want["es"], rel=1e-12)
    assert want["dd"] > 0


def test_bootstrap_recomputes_pooled_ppl_per_resample(tmp_path):
    """Each resample's ppl DD is the pooled DD of the resampled records (not a mean of per-edit DDs)."""
    from mendrepro.evaluate import aggregate

    path = write_run(tmp_path, "wikitext", "gpt2", "mend", np.full(12, 0.5), dd_shift=0.2)
    records = [json.loads(line) for line in path.with_name("edits.jsonl").read_text().splitlines()]
    sample = claims.load_runs([path]).sample("wikitext", "gpt2", ["mend"])
    boot = claims.Boot(np.random.default_rng(7), 5, keep_weights=True)
    dd = boot.dd(sample, "mend")
    w = boot.kept[id(sample)]
    assert w.shape == (6, 12) and (w[0] == 1).all() and (w[1:].sum(1) == 12).all()
    for b in range(1, 6):
        resampled = [r for r, c in zip(records, w[b], strict=True) for _ in range(int(c))]
        assert dd[b] == pytest.approx(aggregate(resampled, "lm")["dd"], rel=1e-12)


# --------------------------------------------------------------------------------------------------------
# Pairing, seeds
# --------------------------------------------------------------------------------------------------------
def test_pairing_by_id_matters(tmp_path):
    """MEND = FT + 0.05 on every edit, edits of very different difficulty: the paired difference is exactly 0.05
    on every resample; resampling the two editors' edits independently would straddle 0. FT's lines are in
    reverse order: pairing is by id, not by position."""
    rng = np.random.default_rng(8)
    base = rng.random(60) * 0.9
    n = len(base)
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", base + 0.05),
        write_run(tmp_path, "zsre", "bart", "ft", base, order=list(range(n))[::-1]),
        write_run(tmp_path, "zsre", "bart", "ftkl", base - 0.05),
    ]
    row = _table(claims.load_runs(paths), TABLE4_ZSRE, "T4.2")
    assert row["verdict"] == claims.REPRODUCED
    assert row["ci_low"] == pytest.approx(0.05) and row["ci_high"] == pytest.approx(0.05)
    # unpaired: each editor's edits resampled on their own
    g = np.random.default_rng(0)
    diff = [base[g.integers(0, n, n)].mean() + 0.05 - base[g.integers(0, n, n)].mean() for _ in range(2000)]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    assert claims.Region(">").verdict(lo, hi) == claims.INCONCLUSIVE


def test_unpaired_ids_are_left_out_with_a_note(tmp_path):
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", np.ones(10)),
        write_run(tmp_path, "zsre", "bart", "ft", np.zeros(12), ids=list(range(12))),
        write_run(tmp_path, "zsre", "bart", "ftkl", np.zeros(10)),
    ]
    sample = claims.load_runs(paths).sample("zsre", "bart", ["mend", "ft", "ftkl"])
    assert sample.n == 10
    assert any("paired on the 10 of 12 edits" in n for n in sample.notes)


def test_several_seeds_two_level_bootstrap(tmp_path):
    rng = np.random.default_rng(9)
    paths, mend_all = [], []
    for seed in (0, 1, 2):
        mend = rng.random(50) * 0.2 + 0.7 + 0.05 * seed
        mend_all.append(mend)
        paths += [
            write_run(tmp_path, "zsre", "bart", "mend", mend, seed=seed),
            write_run(tmp_path, "zsre", "bart", "ft", rng.random(50) * 0.3, seed=seed),
            write_run(tmp_path, "zsre", "bart", "ftkl", rng.random(50) * 0.3, seed=seed),
        ]
    paths.append(write_run(tmp_path, "zsre", "bart", "mend", rng.random(50), seed=7))  # MEND only: left out
    runs = claims.load_runs(paths)
    assert runs.seeds == [0, 1, 2, 7]
    sample = runs.sample("zsre", "bart", ["mend", "ft", "ftkl"])
    assert sample.seeds == [0, 1, 2] and sample.n == 150
    assert any("seeds [7] not run for every editor" in n for n in sample.notes)
    boot = claims.Boot(np.random.default_rng(0), 400, keep_weights=True)
    boot.es(sample, "mend")
    w = boot.kept[id(sample)]
    assert (w[0] == 1).all()
    assert np.allclose(w[1:].sum(1), 150)  # 3 seeds drawn, 50 edits each
    # seed-level resampling: some resamples leave a seed out entirely
    per_seed = np.stack([w[1:, sample.unit_seed == s].sum(1) for s in range(3)], axis=1)
    assert (per_seed == 0).any() and set(np.unique(per_seed)) <= {0, 50, 100, 150}
    assert boot.es(sample, "mend")[0] == pytest.approx(np.concatenate(mend_all).mean())  # pools all seeds
    row = _table(runs, TABLE4_ZSRE, "T4.2")
    assert row["verdict"] == claims.REPRODUCED
    assert "seeds [7] not run for every editor" in row["notes"]


def test_missing_seed_key_is_seed_0(tmp_path):
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", np.ones(5), seed=None),
        write_run(tmp_path, "zsre", "bart", "ft", np.zeros(5), seed=0),
    ]
    runs = claims.load_runs(paths)
    assert runs.seeds == [0]
    assert runs.sample("zsre", "bart", ["mend", "ft"]).n == 5


# --------------------------------------------------------------------------------------------------------
# Missing inputs, degenerate statistics
# --------------------------------------------------------------------------------------------------------
def test_missing_table_is_inconclusive_not_run(tmp_path):
    path = write_run(tmp_path, "zsre", "bart", "mend", np.ones(5))
    df = claims.claims_table(claims.load_runs([path]), {}, n_boot=10)
    assert list(df["claim"]) == list(claims.CLAIM_IDS)
    assert (df["verdict"] == claims.INCONCLUSIVE).all()
    assert df.set_index("claim").loc["T6.1", "notes"] == "not run: the profile has no table6"
    assert df.set_index("claim").loc["F3.1", "notes"] == "not run: no memory-probe files"
    assert df["notes"].str.contains("not run").all()


def test_missing_editor_run_is_not_run(tmp_path):
    paths = [write_run(tmp_path, "zsre", "bart", "mend", np.ones(5))]
    row = _table(claims.load_runs(paths), TABLE4_ZSRE, "T4.2")
    assert row["verdict"] == claims.INCONCLUSIVE
    assert row["notes"] == "not run: ft, ftkl on zsre/bart"
    assert math.isnan(row["estimate"])


def test_older_records_without_original_or_nll_are_inconclusive(tmp_path):
    cfg = {"table4": {"experiments": [{"task": "zsre", "model": "bart"}], "editors": ["ft", "enn", "ke", "mend"]}}
    paths = [
        write_run(tmp_path, "zsre", "bart", "enn", np.ones(20), original=False),
        write_run(tmp_path, "zsre", "bart", "mend", np.ones(20), nll=False),
        write_run(tmp_path, "zsre", "bart", "ke", np.ones(20)),
        write_run(tmp_path, "zsre", "bart", "ft", np.ones(20)),
    ]
    row = _table(claims.load_runs(paths), cfg, "T4.4")
    assert row["verdict"] == claims.INCONCLUSIVE
    assert "zsre ENN: input lacks locality_original" in row["notes"]
    assert "zsre MEND: input lacks per-example nll" in row["notes"]
    assert "zsre KE: max abs(nll_before − nll_original) 0" in row["ours"]


def test_t4_4_enn_changes_the_model_others_do_not(tmp_path):
    cfg = {"table4": {"experiments": [{"task": "wikitext", "model": "gpt2"}], "editors": ["ft", "enn", "ke", "mend"]}}
    paths = [write_run(tmp_path, "wikitext", "gpt2", "enn", np.ones(20), before_shift=0.3)]
    paths += [write_run(tmp_path, "wikitext", "gpt2", e, np.ones(20)) for e in ("mend", "ke", "ft")]
    runs = claims.load_runs(paths)
    assert _table(runs, cfg, "T4.4")["verdict"] == claims.REPRODUCED
    paths[1] = write_run(tmp_path / "b", "wikitext", "gpt2", "mend", np.ones(20), before_shift=1e-6)
    row = _table(claims.load_runs(paths), cfg, "T4.4")
    assert row["verdict"] == claims.NOT_REPRODUCED
    assert "estimate and interval: wikitext MEND" in row["notes"]


def test_zero_denominator_ratio_is_inconclusive(tmp_path):
    cfg = {"table6": {"experiments": [{"task": "zsre", "model": "bart"}], "editors": ["mend-only_smaller", "mend"]}}
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", np.zeros(30)),
        write_run(tmp_path, "zsre", "bart", "mend-only_smaller", np.zeros(30)),
    ]
    row = _table(claims.load_runs(paths), cfg, "T6.3")
    assert row["verdict"] == claims.INCONCLUSIVE
    assert "zero denominator" in row["notes"]


def test_cache_tie_counts_as_at_least_as_good(tmp_path):
    cfg = {"table4": {"experiments": [{"task": "zsre", "model": "bart"}], "editors": ["mend", "cache"]}}
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", np.ones(30)),
        write_run(tmp_path, "zsre", "bart", "cache", np.ones(30)),
    ]
    row = _table(claims.load_runs(paths), cfg, "G.1")
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)
    assert row["verdict"] == claims.REPRODUCED


def test_t5_2_ratio_uses_the_largest_k(tmp_path):
    cfg = {"table5": {"experiments": [{"task": "zsre", "model": "bart"}], "editors": ["enn", "mend"]}}
    cfg["table5"]["batches"] = [{"k": 1}, {"k": 5}]
    rng = np.random.default_rng(10)
    paths = [
        write_run(tmp_path, "zsre", "bart", "mend", (rng.random(80) < 0.95).astype(float)),
        write_run(tmp_path, "zsre", "bart", "enn", (rng.random(80) < 0.95).astype(float)),
        write_run(tmp_path, "zsre", "bart", "mend-k5", (rng.random(100) < 0.8).astype(float), k=5),
        write_run(tmp_path, "zsre", "bart", "enn-k5", (rng.random(100) < 0.1).astype(float), k=5),
    ]
    row = _table(claims.load_runs(paths), cfg, "T5.2")
    assert row["verdict"] == claims.REPRODUCED
    assert "largest configured k = 5 (the paper's is 125)" in row["notes"]
    assert "MEND: ES k=5 0." in row["ours"] and "ENN: ES k=5 0." in row["ours"]


# --------------------------------------------------------------------------------------------------------
# The command: a full config
# --------------------------------------------------------------------------------------------------------
def _full_inputs(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    rng = np.random.default_rng(11)
    n = 60
    es_of = {"mend": 0.9, "enn": 0.85, "ft": 0.5, "ftkl": 0.4, "ke": 0.02, "cache": 0.95}
    metrics: list[Path] = []

    def run(task, model, editor, p, k=1, **kw):
        metrics.append(write_run(root, task, model, editor, (rng.random(n) < p).astype(float), k=k, **kw))

    for e in TABLES_FULL["table3"]["experiments"]:
        for ed in TABLES_FULL["table3"]["editors"]:
            run(e["task"], e["model"], ed, es_of[ed], dd_shift=0.3 if ed == "ft" else 0.0)
    for e in TABLES_FULL["table4"]["experiments"]:
        for ed in TABLES_FULL["table4"]["editors"]:
            shift = {"ft": 0.3, "cache": 0.5}.get(ed, 0.0) if e["task"] == "wikitext" else 0.0
            run(e["task"], e["model"], ed, es_of[ed], dd_shift=shift, before_shift=0.2 if ed == "enn" else 0.0)
    for b in TABLES_FULL["table5"]["batches"][1:]:
        run("zsre", "bart", f"mend-k{b['k']}", 0.8, k=b["k"])
        run("zsre", "bart", f"enn-k{b['k']}", 0.2, k=b["k"])
    for e in TABLES_FULL["table6"]["experiments"]:
        for ed in TABLES_FULL["table6"]["editors"][:-1]:
            run(e["task"], e["model"], ed, 0.1 if ed in ("mend-no_norm", "mend-no_id_init") else 0.9)
    train = []
    for editor, cap, within in (("mend", True, True), ("enn", False, False)):
        path = root / "train" / editor / "train.json"
        path.parent.mkdir(parents=True)
        summary = {"task": "zsre", "model": "bart", "editor": editor, "seed": 0, "steps": 10, "best_step": 10}
        path.write_text(json.dumps({**summary, "hit_step_cap": cap, "kept_within_budget": within}))
        train.append(path)
    probes = []
    for size, scale in (("bert-base", 1.0), ("bart-base", 2.0)):
        editors = {
            e: {"peak_mb": scale * mb, "seconds": 1.0, "editor_params": 10}
            for e, mb in (("mend", 100.0), ("ke", 120.0), ("enn", 400.0), ("ft", 90.0))
        }
        record = {"size": size, "params": int(scale * 1e8), "device": "cpu", "memory_kind": "cpu_peak_rss_delta"}
        path = root / "probe" / f"{size}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**record, "editors": editors}))
        probes.append(path)
    return metrics, train, probes


def test_cli_writes_md_and_csv_for_a_full_config(tmp_path, capsys):
    metrics, train, probes = _full_inputs(tmp_path / "res")
    out = tmp_path / "figs" / "claims"
    argv = ["claims", "--metrics", *map(str, metrics), "--train", *map(str, train), "--probe", *map(str, probes)]
    argv += ["--tables", json.dumps(TABLES_FULL), "--out", str(out), "--profile", "tiny"]
    t0 = time.perf_counter()
    assert report_cli.main(argv) == 0
    assert time.perf_counter() - t0 < 15  # 16 claims, 2000 resamples each
    assert capsys.readouterr().out.split() == [str(out) + ".md", str(out) + ".csv"]
    df = pd.read_csv(out.with_suffix(".csv"), keep_default_na=False)
    assert list(df.columns) == claims.COLUMNS
    assert list(df["claim"]) == list(claims.CLAIM_IDS) and len(df) == 16
    assert set(df["verdict"]) <= set(claims.VERDICTS)
    by = df.set_index("claim")
    for claim in ("T3.1", "T3.2", "T3.3", "T4.2", "T4.3", "T4.4", "T5.1", "T5.2", "T6.1", "F3.1"):
        assert by.loc[claim, "verdict"] == claims.REPRODUCED, (claim, by.loc[claim].to_dict())
    assert "step cap hit: mend (zsre/bart, seed 0)" in by.loc["T4.2", "notes"]
    assert "step cap hit: enn" not in by.loc["T4.4", "notes"]
    assert "kept outside the budget: enn (zsre/bart, seed 0)" in by.loc["T4.4", "notes"]
    assert "kept outside the budget: mend" not in by.loc["T4.2", "notes"]
    assert "step cap hit" not in by.loc["T3.1", "notes"]  # Table 3's models: no capped summary
    assert by.loc["F3.1", "ci_low"] == "" and float(by.loc["F3.1", "estimate"]) == 280.0
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert md.startswith("# The MEND paper's claims: reproduced or not (profile tiny)\n\n*The paper's claims")
    assert "2000 resamples" in md and "of 16;" in md
    assert md.count("\n| T") + md.count("\n| F") + md.count("\n| G") == 16


def test_cli_without_optional_inputs_and_bad_tables(tmp_path, capsys):
    path = write_run(tmp_path, "zsre", "bart", "mend", np.ones(5))
    out = tmp_path / "claims"
    argv = ["claims", "--metrics", str(path), "--tables", "{}", "--out", str(out)]
    assert report_cli.main([*argv, "--n-boot", "20"]) == 0
    assert "Reproduced 0 of 16" in out.with_suffix(".md").read_text(encoding="utf-8")
    assert report_cli.main(["claims", "--metrics", str(path), "--tables", "[1", "--out", str(out)]) == 1
    assert "--tables: not valid JSON" in capsys.readouterr().err
    path.with_name("edits.jsonl").unlink()
    assert report_cli.main(["claims", "--metrics", str(path), "--tables", "{}", "--out", str(out)]) == 1
    assert "edits.jsonl" in capsys.readouterr().err


def test_duplicate_run_of_one_seed_is_an_error(tmp_path):
    a = write_run(tmp_path / "a", "zsre", "bart", "mend", np.ones(5))
    b = write_run(tmp_path / "b", "zsre", "bart", "mend", np.ones(5))
    with pytest.raises(ValueError, match="several metrics files for zsre/bart/mend k=1 seed 0"):
        claims.load_runs([a, b])
    assert claims.load_runs([a, a]).seeds == [0]  # the same file twice is read once


def test_claims_command_does_not_import_torch(tmp_path):
    path = write_run(tmp_path, "zsre", "bart", "mend", np.ones(5))
    code = (
        "import runpy, sys\n"
        "sys.argv = ['mendrepro', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('mendrepro', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('IMPORTED:' + ','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    argv = ["claims", "--metrics", str(path), "--tables", "{}", "--out", str(tmp_path / "c"), "--n-boot", "10"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rsplit("IMPORTED:", 1)[1].strip() == ""


def test_empty_optional_input_groups_parse(tmp_path):
    """The rule passes `--train {input.train} --probe {input.probe}`, either of which may be empty."""
    path = write_run(tmp_path, "zsre", "bart", "mend", np.ones(5))
    argv = ["claims", "--metrics", str(path), "--train", "--probe", "--tables", "{}", "--out", str(tmp_path / "c")]
    assert report_cli.main([*argv, "--n-boot", "10"]) == 0


def test_train_summary_step_cap(tmp_path):
    path = tmp_path / "train.json"
    base = {"task": "zsre", "model": "bart", "editor": "mend", "steps": 500, "best_step": 450}
    path.write_text(json.dumps({**base, "hit_step_cap": False, "seed": 2}))
    assert claims.read_train_summary(path) == claims.TrainSummary("zsre", "bart", "mend", 2, False)
    path.write_text(json.dumps({**base, "train_config": {"steps": 500}}))  # older file: inferred, seed 0
    assert claims.read_train_summary(path) == claims.TrainSummary("zsre", "bart", "mend", 0, True)
    path.write_text(json.dumps({**base, "train_config": {"steps": 1000}}))
    assert not claims.read_train_summary(path).hit_step_cap
    path.write_text(json.dumps({**base, "hit_step_cap": "yes"}))
    with pytest.raises(tables.MetricsError, match="hit_step_cap"):
        claims.read_train_summary(path)


@pytest.mark.parametrize("within, outside", [(True, False), (False, True), (None, False)])
def test_train_summary_kept_outside_budget(tmp_path, within, outside):
    path = tmp_path / "train.json"
    base = {"task": "zsre", "model": "bart", "editor": "mend", "steps": 500, "hit_step_cap": False}
    path.write_text(json.dumps({**base, "kept_within_budget": within}))
    assert claims.read_train_summary(path).kept_outside_budget is outside


def test_train_summary_kept_within_budget_must_be_a_bool(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"task": "zsre", "model": "bart", "editor": "mend", "kept_within_budget": "no"}))
    with pytest.raises(tables.MetricsError, match="kept_within_budget"):
        claims.read_train_summary(path)


def test_an_extra_table4_row_changes_no_claim_and_is_shown_beyond_the_paper(tmp_path):
    """FT+L (config `ftl`) is a row beyond Table 4: T4.1, T4.2 and G.1 are about the paper's editors, so runs of it
    (here perfect ES and the worst drawdown) leave them as they are."""
    rng = np.random.default_rng(11)
    paper_five = TABLES_FULL["table4"]["editors"]
    paths = []
    for task in ("zsre", "wikitext"):
        for i, editor in enumerate(paper_five):
            paths.append(write_run(tmp_path, task, MODEL[task], editor, rng.random(30), dd_shift=0.1 * i))
    with_ftl = [
        *paths,
        *(write_run(tmp_path, t, MODEL[t], "ftl", np.ones(30), dd_shift=5.0) for t in ("zsre", "wikitext")),
    ]
    cfg = {"table4": {**TABLES_FULL["table4"], "experiments": TABLES_FULL["table4"]["experiments"][1:]}}
    cfg_ftl = {"table4": {**cfg["table4"], "editors": [*paper_five, "ftl"]}}
    for claim in ("T4.1", "T4.2", "G.1"):
        before = _table(claims.load_runs(paths), cfg, claim, n_boot=200)
        after = _table(claims.load_runs(with_ftl), cfg_ftl, claim, n_boot=200)
        assert before.to_dict() == after.to_dict(), claim
    df = tables.table4(tables.load_metrics(with_ftl))
    assert list(df.index)[-2:] == ["Cache (beyond Table 4)", "FT+L (beyond Table 4)"]
    assert df.loc["FT+L (beyond Table 4)", "zsRE ES (ours)"] == "1.000"
    assert df.loc["FT+L (beyond Table 4)", "zsRE ES (paper)"] == tables.MISSING


@pytest.mark.parametrize("task", ["zsre", "wikitext"])
def test_dd_is_against_the_original_model_where_the_lines_score_it(tmp_path, task):
    """A collapsed ENN keeps a small drawdown against its own pre-edit model; the claims measure it against the
    original model, as evaluate's ``dd_original`` does (the two agree for every editor that leaves the model)."""
    from mendrepro.evaluate import aggregate  # imports torch: fine in a test

    path = write_run(tmp_path, task, MODEL[task], "enn", np.full(30, 0.5), dd_shift=0.25)
    lines = path.with_name("edits.jsonl")
    records = [json.loads(x) for x in lines.read_text().splitlines()]
    for r in records:  # the original model was better than ENN's pre-edit model
        if task == "zsre":
            r["locality_original"]["acc"] = [1.0] * len(r["locality_original"]["acc"])
        else:
            r["locality_original"]["nll"] = [x - 1.0 for x in r["locality_original"]["nll"]]
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    sample = claims.load_runs([path]).sample(task, MODEL[task], ["enn"])
    dd = claims.Boot(np.random.default_rng(0), 20).dd(sample, "enn")[0]
    want = aggregate(records, "lm" if task == "wikitext" else "seq2seq")
    assert dd == pytest.approx(want["dd_original"], rel=1e-12) and dd > want["dd"] + 0.01


def test_each_part_says_how_many_edits_it_rests_on(tmp_path):
    paths = [write_run(tmp_path, "zsre", "bart", e, np.full(40, v)) for e, v in (("mend", 0.9), ("ft", 0.5))]
    paths.append(write_run(tmp_path, "zsre", "bart", "ftkl", np.full(40, 0.4)))
    row = _table(claims.load_runs(paths), TABLE4_ZSRE, "T4.2")
    assert "(n = 40)" in row["ours"]


# --------------------------------------------------------------------------------------------------------
# Table 5 at matched scale: the verdict at the width-scaled k, the paper's k beside it as a diagnostic
# --------------------------------------------------------------------------------------------------------
SCALED_T5 = {
    "table5": {
        "experiments": [{"task": "zsre", "model": "bart"}],
        "editors": ["enn", "mend"],
        "batches": [{"k": k} for k in (1, 5, 13, 21, 25, 75, 125)],
        "k_scaling": {
            "paper_width": 768,
            "rounding": "ceil",
            "paper_k": [1, 5, 25, 75, 125],
            "scaled_k": [1, 1, 5, 13, 21],
        },
    }
}
N_T5 = 120  # edits per run (a multiple of every k but 13, 21 and 75: the runs need not divide it)


def _t5_runs(root: Path, mend_es: dict[int, float], enn_es: dict[int, float], mend_dd: dict[int, float]) -> claims.Runs:
    """MEND and ENN at every k of SCALED_T5, with these ES (probabilities) and MEND's acc drawdown shifts."""
    rng = np.random.default_rng(21)
    paths = []
    for k in (1, 5, 13, 21, 25, 75, 125):
        for editor, es in (("mend", mend_es), ("enn", enn_es)):
            name = editor if k == 1 else f"{editor}-k{k}"
            shift = mend_dd.get(k, 0.0) if editor == "mend" else 0.0
            values = (rng.random(N_T5) < es[k]).astype(float)
            paths.append(write_run(root, "zsre", "bart", name, values, k=k, dd_shift=shift))
    return claims.load_runs(paths)


# At the scaled k (5, 13, 21) MEND stays well ahead of ENN, keeps its ES and its locality; at the paper's k (25, 75,
# 125) it falls below ENN, keeps less than half its ES and breaks the model: the two readings disagree.
MEND_ES = {1: 0.95, 5: 0.9, 13: 0.85, 21: 0.8, 25: 0.05, 75: 0.03, 125: 0.02}
ENN_ES = {1: 0.95, 5: 0.2, 13: 0.1, 21: 0.05, 25: 0.3, 75: 0.3, 125: 0.3}
MEND_DD = {25: 0.34, 75: 0.34, 125: 0.34}


@pytest.mark.parametrize(
    ("claim", "labels", "diagnostic"),
    [
        (
            "T5.1",
            ["k=25 (scaled: 5)", "k=75 (scaled: 13)", "k=125 (scaled: 21)", "paper k=25", "paper k=75", "paper k=125"],
            "at the paper's k (diagnostic, not the verdict): not reproduced",
        ),
        (
            "T5.2",
            ["MEND k=125 (scaled: 21)", "ENN k=125 (scaled: 21)", "MEND paper k=125", "ENN paper k=125"],
            "at the paper's k (diagnostic, not the verdict): not reproduced",
        ),
        (
            "T5.3",
            ["k=1/5 (scaled: 1)", "k=25 (scaled: 5)", "k=75 (scaled: 13)", "k=125 (scaled: 21)"]
            + [f"paper k={k}" for k in (1, 5, 25, 75, 125)],
            "at the paper's k (diagnostic, not the verdict): not reproduced",
        ),
    ],
)
def test_t5_verdict_at_the_scaled_k_with_the_paper_k_beside_it(tmp_path, claim, labels, diagnostic):
    runs = _t5_runs(tmp_path, MEND_ES, ENN_ES, MEND_DD)
    row = _table(runs, SCALED_T5, claim)
    assert row["verdict"] == claims.REPRODUCED, row.to_dict()
    assert row["notes"].startswith(diagnostic), row["notes"]
    # Every reading is in ours, in order: the scaled parts, then the paper's k.
    assert [lab for lab in labels if f"{lab}: " in row["ours"]] == labels, row["ours"]
    assert all(row["ours"].index(a) < row["ours"].index(b) for a, b in zip(labels, labels[1:], strict=False))
    # The estimate and interval are a scaled part's, never the diagnostic's.
    assert "estimate and interval: paper" not in row["notes"]


def test_t5_without_a_width_rule_reads_the_paper_k_only(tmp_path):
    runs = _t5_runs(tmp_path, MEND_ES, ENN_ES, MEND_DD)
    cfg = {"table5": {k: v for k, v in SCALED_T5["table5"].items() if k != "k_scaling"}}
    cfg["table5"]["batches"] = [{"k": k} for k in (1, 5, 25, 75, 125)]
    for claim in ("T5.1", "T5.2", "T5.3"):
        row = _table(runs, cfg, claim)
        assert row["verdict"] == claims.NOT_REPRODUCED, (claim, row.to_dict())
        assert "diagnostic" not in row["notes"] and "scaled" not in row["ours"]


def test_t5_scaled_k_only_batches_are_not_paper_k(tmp_path):
    """With the rule, k = 13 and 21 are read only as scaled k, never as paper k of their own (T5.1's k ≥ 25 reads
    25, 75, 125; T5.3's parts are the paper's five k and their scaled k)."""
    runs = _t5_runs(tmp_path, MEND_ES, ENN_ES, MEND_DD)
    row = _table(runs, SCALED_T5, "T5.3")
    assert "paper k=13" not in row["ours"] and "paper k=21" not in row["ours"]


def test_t5_2_whose_largest_k_scales_to_one_is_inconclusive(tmp_path):
    """The micro profile: k = 5 scales to 1, so there is no batch to compare with one edit at matched scale."""
    cfg = {"table5": {**SCALED_T5["table5"], "batches": [{"k": 1}, {"k": 5}]}}
    cfg["table5"]["k_scaling"] = {**cfg["table5"]["k_scaling"], "paper_k": [1, 5], "scaled_k": [1, 1]}
    runs = _t5_runs(tmp_path, MEND_ES, ENN_ES, MEND_DD)
    row = _table(runs, cfg, "T5.2")
    assert row["verdict"] == claims.INCONCLUSIVE
    assert "k = 5 scales to k = 1" in row["notes"]
    assert "at the paper's k (diagnostic, not the verdict): reproduced" in row["notes"]


def test_full_config_with_a_width_rule_keeps_16_claims(tmp_path):
    runs = _t5_runs(tmp_path, MEND_ES, ENN_ES, MEND_DD)
    df = claims.claims_table(runs, {**TABLES_FULL, **SCALED_T5}, n_boot=50)
    assert list(df["claim"]) == list(claims.CLAIM_IDS) and len(df) == 16
    assert list(df.set_index("claim").loc[["T5.1", "T5.2", "T5.3"], "verdict"]) == [claims.REPRODUCED] * 3
