"""The paper's claims (PAPER_SPEC, "The paper's claims"), checked on our raw per-edit records.

One row per claim: the paper's evidence (its published numbers from :mod:`mendrepro.report.paper`), ours, the
claim's test statistic with a 95% percentile bootstrap interval, and a verdict computed from the interval:

- ``reproduced`` when the whole interval lies in the claimed region (e.g. a difference > 0),
- ``not reproduced`` when it lies wholly outside it,
- ``inconclusive`` otherwise, and when the claim's inputs were not run or lack what it needs (a note says which).

The statistics are recomputed from each run's ``edits.jsonl`` (next to its ``metrics.json``) exactly as
:func:`mendrepro.evaluate.aggregate` computes the metrics: ES = mean of the edits' ``es``; acc DD = pooled
locality accuracy before − after; ppl DD = exp(ΣNLL_after/Σtokens_after) − exp(ΣNLL_before/Σtokens_before),
pooled over the edits. The bootstrap resamples edit ids with replacement, the same ids for every editor of a
comparison (records pair by (seed, id): every editor of one (task, model, k) is evaluated on the same edits); with
several seeds it first resamples seeds, then ids within each chosen seed. Each resample is a vector of edit counts,
so every statistic is a few matrix products over per-edit sums (no Python loop over resamples). A claim over
several parts (models, tasks, k) is reproduced iff every part is, not reproduced iff some part is not; its
estimate and interval are those of its least favourable part. Command::

    python -m mendrepro claims --metrics M... [--train T...] [--probe P...] --tables JSON --out STEM \\
        [--profile NAME] [--n-boot 2000] [--seed 0]

writes ``STEM.md`` and ``STEM.csv``. Pandas and numpy only, never torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mendrepro import atomic
from mendrepro.report import paper, tables

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
COLUMNS = ["claim", "statement", "paper", "ours", "estimate", "ci_low", "ci_high", "verdict", "notes"]
EDITS_FILE = "edits.jsonl"
# Comparisons at the bounds of a region are exact up to this (a difference of two equal sums is exactly 0, but
# a ratio of equal sums may be off in the last bit).
EPS = 1e-12

STATEMENTS: dict[str, str] = {
    "T3.1": "On each large model, MEND has the highest ES of FT, FT+KL, KE, MEND.",
    "T3.2": "On each large model, KE has the lowest ES.",
    "T3.3": "On GPT-Neo and GPT-J (Wikitext), FT's perplexity drawdown is above MEND's.",
    "T4.1": "ENN and MEND have the two highest worst-task ES of Table 4's editors (FT, FT+KL, ENN, KE, MEND).",
    "T4.2": "MEND's ES is above FT's and FT+KL's on every Table 4 task.",
    "T4.3": "FT+KL's drawdown is below FT's on Wikitext.",
    "T4.4": "ENN changes the pre-edit model; MEND, KE and FT do not.",
    "T5.1": "MEND's ES is above ENN's for every k ≥ 25.",
    "T5.2": "MEND keeps at least half its k = 1 ES at k = 125; ENN keeps less than half.",
    "T5.3": "MEND's accuracy drawdown stays small (≤ 0.05) at every k.",
    "T6.1": "No-norm and No-ID-init reach at most half of MEND's Wikitext ES.",
    "T6.2": "No-sharing is within 0.05 of MEND's ES on both tasks.",
    "T6.3": "Only-smaller keeps at least 0.85 of MEND's ES on both tasks.",
    "T6.4": "On zsRE every ablation keeps at least 0.9 of MEND's ES.",
    "F3.1": "ENN's peak training memory is above MEND's and KE's at every probed size.",
    "G.1": "The caching editor is at least as good as MEND on zsRE and FEVER, and its Wikitext drawdown is the worst.",
}
CLAIM_IDS: tuple[str, ...] = tuple(STATEMENTS)


class Unavailable(Exception):  # a reason, not an error: the claim (or part) becomes inconclusive
    """A claim's (or part's) inputs were not run or lack what it needs; the message is the note."""


# ----------------------------------------------------------------------------------------------------------
# Loading: runs (metrics.json + edits.jsonl), training summaries, probes
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One evaluation run: its keys (from metrics.json) and per-edit columns (from edits.jsonl)."""

    task: str
    model: str
    editor: str
    n_edits: int
    train_k: int
    dd_kind: str
    seed: int
    profile: str | None
    path: str
    ids: list
    index: dict  # edit id -> row
    cols: dict[str, np.ndarray]  # per-edit sums, see _edit_columns
    lacks: dict[str, str] = field(default_factory=dict)  # column -> what the input lacks for it


def _as_id(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def _numbers(path: Path, line: int, side: str, key: str, value: object) -> list[float]:
    if not isinstance(value, list) or not all(tables.is_number(v) for v in value):
        raise tables.MetricsError(f"{path}:{line}: {side}.{key} must be a list of numbers, got {value!r}")
    return [float(v) for v in value]


def _edit_columns(path: Path, records: list[dict], dd_kind: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Per-edit sums of a run's records.

    ``es``; acc runs: ``acc_b``/``acc_a`` (locality accuracy summed over the edit's locality examples) and
    ``n_b``/``n_a`` (their counts); ppl runs: ``nll_b``/``nll_a`` (summed token NLL) and ``tok_b``/``tok_a``
    (token counts); where every record has ``locality_original`` (the untouched original model's scores), the
    same sums of it with suffix ``o``, so that drawdown is measured against the original model (it differs from
    ``b`` only for ENN, which trains the base model). Where every record has per-example NLL before the edit and on
    the original model:
    ``dabs`` (Σ |nll_before − nll_original|), ``dn`` (their count), ``dmax`` (their maximum). Columns the input
    cannot give are in the second mapping, with what it lacks.
    """
    keys = [f"{m}_{x}" for x in "bao" for m in ("acc", "n", "nll", "tok")]
    es, sums = [], {k: [] for k in keys}
    dabs, dn, dmax = [], [], []
    lacks: dict[str, str] = {}
    for line, r in enumerate(records, 1):
        if not tables.is_number(r.get("es")):
            raise tables.MetricsError(f"{path}:{line}: key 'es' must be a number, got {r.get('es')!r}")
        es.append(float(r["es"]))
        for side, suffix in (("locality_before", "b"), ("locality_after", "a"), ("locality_original", "o")):
            loc = r.get(side)
            if side == "locality_original" and loc is None:
                continue  # older runs: drawdown against the pre-edit model only
            if not isinstance(loc, dict):
                raise tables.MetricsError(f"{path}:{line}: key {side!r} must be an object, got {loc!r}")
            if dd_kind == "acc":
                acc = _numbers(path, line, side, "acc", loc.get("acc"))
                sums[f"acc_{suffix}"].append(sum(acc))
                sums[f"n_{suffix}"].append(len(acc))
            else:
                nll = _numbers(path, line, side, "nll", loc.get("nll"))
                tok = _numbers(path, line, side, "tokens", loc.get("tokens"))
                sums[f"nll_{suffix}"].append(sum(nll))
                sums[f"tok_{suffix}"].append(sum(tok))
        if "dabs" in lacks:
            continue
        before, original = r["locality_before"].get("nll"), (r.get("locality_original") or {}).get("nll")
        if "locality_original" not in r:
            lacks["dabs"] = f"locality_original ({path})"
        elif before is None or original is None:
            lacks["dabs"] = f"per-example nll in locality_before/locality_original ({path})"
        else:
            b = _numbers(path, line, "locality_before", "nll", before)
            o = _numbers(path, line, "locality_original", "nll", original)
            if len(b) != len(o):
                raise tables.MetricsError(f"{path}:{line}: locality_before and locality_original differ in length")
            d = np.abs(np.asarray(b) - np.asarray(o))
            dabs.append(float(d.sum()))
            dn.append(len(d))
            dmax.append(float(d.max()) if len(d) else 0.0)
    cols = {"es": np.asarray(es, dtype=float)}
    for key, values in sums.items():
        if len(values) == len(records):
            cols[key] = np.asarray(values, dtype=float)
    if "dabs" not in lacks:
        cols.update(dabs=np.asarray(dabs), dn=np.asarray(dn, dtype=float), dmax=np.asarray(dmax))
    for key in ("dn", "dmax"):
        if "dabs" in lacks:
            lacks[key] = lacks["dabs"]
    return cols, lacks


def read_run(record: dict) -> Run:
    """The run of one validated metrics record (:func:`mendrepro.report.tables.read_metrics_records`), with the
    per-edit columns of the ``edits.jsonl`` next to its file."""
    path = Path(record["path"]).with_name(EDITS_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"raw per-edit file not found: {path} (written with {record['path']} by the evaluation)"
        )
    records = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise tables.MetricsError(f"{path}:{line_no}: not valid JSON ({e})") from e
            if not isinstance(r, dict) or "id" not in r:
                raise tables.MetricsError(f"{path}:{line_no}: expected a JSON object with an 'id'")
            records.append(r)
    if not records:
        raise tables.MetricsError(f"{path}: no edits")
    ids, index = [], {}
    for r in records:
        key = _as_id(r["id"])
        if key in index:
            raise tables.MetricsError(f"{path}: edit id {r['id']!r} occurs twice (records pair by id)")
        index[key] = len(ids)
        ids.append(key)
    cols, lacks = _edit_columns(path, records, record["dd_kind"])
    return Run(
        task=record["task"],
        model=record["model"],
        editor=record["editor"],
        n_edits=int(record["n_edits"]),
        train_k=int(record["train_k"]),
        dd_kind=record["dd_kind"],
        seed=int(record["seed"]),
        profile=record.get("profile"),
        path=str(path),
        ids=ids,
        index=index,
        cols=cols,
        lacks=lacks,
    )


@dataclass(frozen=True)
class TrainSummary:
    task: str
    model: str
    editor: str
    seed: int
    hit_step_cap: bool
    # The kept checkpoint was outside the training's drawdown budget (none of its validations was within it).
    kept_outside_budget: bool = False


def read_train_summary(path: Path) -> TrainSummary:
    """The keys of a training summary (``train.json``) the claims use.

    ``hit_step_cap`` is the summary's key; files written before it existed: inferred as ``steps`` ≥ the
    configured ``train_config.steps`` (False where either is absent). ``kept_within_budget`` false (not absent or
    null: a training without a budget) makes ``kept_outside_budget``.
    """
    record = tables.read_json_object(path, "training summary", "the editor training rule")
    for key in ("task", "model", "editor"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise tables.MetricsError(f"{path}: key {key!r} must be a non-empty string, got {record.get(key)!r}")
    seed = tables.check_seed(path, record)
    cap = record.get("hit_step_cap")
    if cap is None:
        steps, cfg = record.get("steps"), record.get("train_config")
        cap_steps = cfg.get("steps") if isinstance(cfg, dict) else None
        cap = tables.is_number(steps) and tables.is_number(cap_steps) and steps >= cap_steps
    elif not isinstance(cap, bool):
        raise tables.MetricsError(f"{path}: key 'hit_step_cap' must be true or false, got {cap!r}")
    within = record.get("kept_within_budget")
    if within is not None and not isinstance(within, bool):
        raise tables.MetricsError(f"{path}: key 'kept_within_budget' must be true, false or null, got {within!r}")
    return TrainSummary(record["task"], record["model"], record["editor"], seed, bool(cap), within is False)


class Runs:
    """The evaluation runs, by (task, model, editor, k) and seed; builds paired samples of several editors."""

    def __init__(self, runs: Iterable[Run]):
        self.runs: dict[tuple[str, str, str, int], dict[int, Run]] = {}
        for run in runs:
            cell = self.runs.setdefault((run.task, run.model, run.editor, run.n_edits), {})
            if run.seed in cell:
                raise ValueError(
                    f"several metrics files for {run.task}/{run.model}/{run.editor} k={run.n_edits} seed {run.seed}: "
                    f"{cell[run.seed].path}, {run.path}"
                )
            cell[run.seed] = run
        self._samples: dict[tuple, Sample] = {}
        self.touched: list[Sample] = []  # the samples built or reused since this was last cleared

    @property
    def seeds(self) -> list[int]:
        return sorted({s for cell in self.runs.values() for s in cell})

    @property
    def profiles(self) -> list[str]:
        return sorted({r.profile for cell in self.runs.values() for r in cell.values() if r.profile})

    def sample(self, task: str, model: str, editors: Sequence[str], k: int = 1) -> Sample:
        """The records of ``editors`` on (task, model) with k edits at once, paired by (seed, edit id).

        Seeds not run for every editor are left out, and within a seed the ids not evaluated for every editor
        (a note says so). :class:`Unavailable` when an editor was not run.
        """
        key = (task, model, tuple(editors), k)
        if key in self._samples:
            self.touched.append(self._samples[key])
            return self._samples[key]
        where = f"{task}/{model}" + (f" k={k}" if k != 1 else "")
        missing = [e for e in editors if (task, model, e, k) not in self.runs]
        if missing:
            raise Unavailable(f"not run: {', '.join(missing)} on {where}")
        cells = [self.runs[(task, model, e, k)] for e in editors]
        seeds = sorted(set.intersection(*(set(c) for c in cells)))
        if not seeds:
            raise Unavailable(f"not run: no seed run for all of {', '.join(editors)} on {where}")
        notes = []
        left_out = sorted(set().union(*(set(c) for c in cells)) - set(seeds))
        if left_out:
            notes.append(f"{where}: seeds {left_out} not run for every editor, left out")
        cols: dict[str, dict[str, list[np.ndarray]]] = {e: {} for e in editors}
        lacks: dict[str, dict[str, str]] = {e: {} for e in editors}
        unit_seed = []
        for si, seed in enumerate(seeds):
            runs = [c[seed] for c in cells]
            common = [i for i in runs[0].ids if all(i in r.index for r in runs[1:])]
            if not common:
                raise Unavailable(f"no edit id in common to {', '.join(editors)} on {where} seed {seed}")
            most = max(len(r.ids) for r in runs)
            if len(common) < most:
                notes.append(f"{where} seed {seed}: paired on the {len(common)} of {most} edits all editors saw")
            unit_seed += [si] * len(common)
            for e, r in zip(editors, runs, strict=True):
                rows = np.fromiter((r.index[i] for i in common), dtype=np.int64, count=len(common))
                for c, values in r.cols.items():
                    cols[e].setdefault(c, []).append(values[rows])
                lacks[e].update(r.lacks)
        kinds = {c[s].dd_kind for c in cells for s in seeds}
        if len(kinds) > 1:
            raise Unavailable(f"{where}: runs of {', '.join(editors)} report different drawdowns {sorted(kinds)}")
        merged = {
            e: {c: np.concatenate(v) for c, v in cs.items() if len(v) == len(seeds) and c not in lacks[e]}
            for e, cs in cols.items()
        }
        sample = Sample(
            where=where,
            task=task,
            model=model,
            k=k,
            editors=tuple(editors),
            seeds=seeds,
            unit_seed=np.asarray(unit_seed, dtype=np.int64),
            cols=merged,
            lacks=lacks,
            dd_kind=kinds.pop(),
            notes=notes,
        )
        self._samples[key] = sample
        self.touched.append(sample)
        return sample


@dataclass(eq=False)
class Sample:
    """Per-edit columns of several editors on the same edits: unit u is edit (seeds[unit_seed[u]], id)."""

    where: str
    task: str
    model: str
    k: int
    editors: tuple[str, ...]
    seeds: list[int]
    unit_seed: np.ndarray
    cols: dict[str, dict[str, np.ndarray]]
    lacks: dict[str, dict[str, str]]
    dd_kind: str
    notes: list[str]

    def col(self, editor: str, name: str) -> np.ndarray:
        if name not in self.cols[editor]:
            why = self.lacks[editor].get(name, name)
            raise Unavailable(f"input lacks {why}")
        return self.cols[editor][name]

    @property
    def n(self) -> int:
        return len(self.unit_seed)


# ----------------------------------------------------------------------------------------------------------
# The bootstrap: resample weights, statistics as functions of weighted per-edit sums
# ----------------------------------------------------------------------------------------------------------
class Boot:
    """Bootstrap sums of each sample's per-edit columns: row 0 over all records (the point estimate), rows
    1..n_boot over the resamples.

    A resample is a vector of counts, how often each edit was drawn; every statistic is a function of the
    count-weighted sums of per-edit columns, so all resamples of all columns of a sample are one matrix product
    (done in chunks of resamples, so memory stays bounded on large dev sets). With several seeds the resample is
    two-level: draw the seeds with replacement (counts c_s), then for each of the c_s copies of seed s its n_s
    edits with replacement.
    """

    # Resample counts drawn at once (rows × edits): small enough that counting the draws stays in cache.
    CHUNK_CELLS = 1 << 19

    def __init__(self, rng: np.random.Generator, n_boot: int, *, keep_weights: bool = False):
        self.rng, self.n_boot, self.keep_weights = rng, n_boot, keep_weights
        self._sums: dict[int, dict[tuple[str, str], np.ndarray]] = {}
        self.kept: dict[int, np.ndarray] = {}  # with keep_weights: sample id -> counts (n_boot + 1, n), for tests

    def _draw(self, rows: int, n: int) -> np.ndarray:
        """Counts (rows, n): each row how often each of n items was drawn in n draws with replacement."""
        draws = self.rng.integers(0, n, size=(rows, n), dtype=np.int64) + (np.arange(rows, dtype=np.int64) * n)[:, None]
        return np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)

    def _counts(self, sample: Sample, seed_counts: np.ndarray) -> np.ndarray:
        """The edit counts of resamples with these seed counts (rows, n_seeds) -> (rows, sample.n)."""
        rows = len(seed_counts)
        if len(sample.seeds) == 1:
            return self._draw(rows, sample.n).astype(np.float64)
        w = np.zeros((rows, sample.n))
        bounds = np.searchsorted(sample.unit_seed, np.arange(len(sample.seeds) + 1))  # units are grouped by seed
        for s in range(len(sample.seeds)):
            lo, hi = bounds[s], bounds[s + 1]
            copies = seed_counts[:, s]
            drawn = np.flatnonzero(copies)
            if not len(drawn):
                continue
            # one row of draws per copy of the seed, the copies of one resample adjacent; summed per resample
            draws = self._draw(int(copies.sum()), hi - lo)
            starts = np.concatenate(([0], np.cumsum(copies[drawn])[:-1]))
            w[drawn, lo:hi] = np.add.reduceat(draws, starts, axis=0)
        return w

    def sums(self, sample: Sample) -> dict[tuple[str, str], np.ndarray]:
        """(editor, column) -> its sums (n_boot + 1,); key ("", "n") the number of edits drawn."""
        key = id(sample)
        if key not in self._sums:
            names = [(e, c) for e in sample.editors for c in sample.cols[e] if c != "dmax"]
            values = np.column_stack([sample.cols[e][c] for e, c in names] + [np.ones(sample.n)])
            n_seeds, b = len(sample.seeds), self.n_boot
            if n_seeds == 1:
                seed_counts = np.ones((b, 1), dtype=np.int64)
            else:
                seed_counts = self.rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b)
            out = np.empty((b + 1, values.shape[1]))
            out[0] = values.sum(0)
            kept = [np.ones((1, sample.n))]
            chunk = max(1, self.CHUNK_CELLS // max(sample.n, 1))
            for r0 in range(0, b, chunk):
                w = self._counts(sample, seed_counts[r0 : r0 + chunk])
                out[1 + r0 : 1 + r0 + len(w)] = w @ values
                if self.keep_weights:
                    kept.append(w)
            if self.keep_weights:
                self.kept[key] = np.concatenate(kept)
            self._sums[key] = {name: out[:, i] for i, name in enumerate([*names, ("", "n")])}
        return self._sums[key]

    def total(self, sample: Sample, editor: str, name: str) -> np.ndarray:
        sample.col(editor, name)  # Unavailable when the input lacks it
        return self.sums(sample)[(editor, name)]

    def es(self, sample: Sample, editor: str) -> np.ndarray:
        """ES on each resample: the mean of the drawn edits' ``es``."""
        return self.total(sample, editor, "es") / self.sums(sample)[("", "n")]

    def dd(self, sample: Sample, editor: str) -> np.ndarray:
        """DD on each resample, pooled over the resampled edits as :func:`mendrepro.evaluate.aggregate` does,
        against the original model where the records score it (``dd_original``; the same as against the pre-edit
        model for every editor but ENN), else against the pre-edit model."""
        t = lambda name: self.total(sample, editor, name)  # noqa: E731
        ref = "o" if ("acc_o" if sample.dd_kind == "acc" else "nll_o") in sample.cols[editor] else "b"
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if sample.dd_kind == "acc":
                return t(f"acc_{ref}") / t(f"n_{ref}") - t("acc_a") / t("n_a")
            return np.exp(t("nll_a") / t("tok_a")) - np.exp(t(f"nll_{ref}") / t(f"tok_{ref}"))

    def mean_abs_dnll(self, sample: Sample, editor: str) -> np.ndarray:
        """Mean |nll_before − nll_original| over the resampled edits' locality examples."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.total(sample, editor, "dabs") / self.total(sample, editor, "dn")


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0. A resample set with a NaN statistic makes the part inconclusive (the ratio
    is undefined there, so no interval is claimed; see :func:`bootstrap_part`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# ----------------------------------------------------------------------------------------------------------
# Regions, parts, rows
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """Where a claim puts its statistic: ``op`` one of >, ≥, <, ≤ (``bound``) or ``within`` [−bound, bound]."""

    op: str
    bound: float = 0.0

    def __str__(self) -> str:
        return f"within ±{self.bound:g}" if self.op == "within" else f"{self.op} {self.bound:g}"

    def verdict(self, lo: float, hi: float) -> str:
        """Reproduced when [lo, hi] lies in the region, not reproduced when wholly outside, else inconclusive."""
        b = self.bound
        if self.op == ">":
            inside, outside = lo > b + EPS, hi <= b + EPS
        elif self.op == "≥":
            inside, outside = lo >= b - EPS, hi < b - EPS
        elif self.op == "<":
            inside, outside = hi < b - EPS, lo >= b - EPS
        elif self.op == "≤":
            inside, outside = hi <= b + EPS, lo > b + EPS
        elif self.op == "within":
            inside, outside = lo >= -b - EPS and hi <= b + EPS, hi < -b - EPS or lo > b + EPS
        else:  # pragma: no cover - the claims below use the ops above
            raise ValueError(f"unknown region {self.op!r}")
        return REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE

    def margin(self, lo: float, hi: float) -> float:
        """How far [lo, hi] lies inside the region (negative: partly or wholly outside)."""
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return -math.inf
        if self.op in (">", "≥"):
            return lo - self.bound
        if self.op in ("<", "≤"):
            return self.bound - hi
        return min(lo + self.bound, self.bound - hi)


@dataclass
class Part:
    """One part of a claim (a model, task, k or size): its statistic, interval and verdict."""

    label: str
    ours: str = tables.MISSING
    region: Region | None = None
    estimate: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    verdict: str = INCONCLUSIVE
    note: str = ""
    interval: bool = True  # False: a single measurement or a deterministic check (no bootstrap)
    cells: tuple = ()  # (task, model, editor, seeds, n edits per seed) of the runs it used
    # A diagnostic reading shown beside the claim's (Table 5 at the paper's k where the profile declares a width
    # rule): described in ours and notes, never in the verdict, estimate or interval.
    diagnostic: bool = False

    def n_text(self) -> str:
        """``"n = 150"`` (edits per seed each editor was scored on), ``"n = 150/250"`` when the runs differ."""
        ns = sorted({c[4] for c in self.cells if len(c) > 4})
        return f"n = {'/'.join(map(str, ns))}" if ns else ""

    def describe(self) -> str:
        n = f" ({self.n_text()})" if self.n_text() else ""
        if math.isnan(self.estimate):
            return f"{self.label}: {self.ours}{n}" + (f" ({self.note})" if self.note else "")
        stat = f"{fmt(self.estimate)} [{fmt(self.lo)}, {fmt(self.hi)}]" if self.interval else fmt(self.estimate)
        return f"{self.label}: {self.ours}{n}; statistic {stat} vs {self.region} → {self.verdict}"


def fmt(value: float) -> str:
    return tables.format_ours(value)


def bootstrap_part(label: str, reps: np.ndarray, region: Region, ours: str, cells: tuple = ()) -> Part:
    """The part of statistic ``reps`` (row 0: the point estimate, then the resamples): percentile interval and
    verdict. A NaN statistic (a ratio with a zero denominator) in any resample leaves the part inconclusive."""
    est, boot = float(reps[0]), reps[1:]
    bad = int((~np.isfinite(boot)).sum())
    if not math.isfinite(est) or bad:
        return Part(
            label,
            ours,
            region,
            est,
            verdict=INCONCLUSIVE,
            note=f"statistic undefined (zero denominator) in {bad} of {len(boot)} resamples",
            cells=cells,
        )
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    return Part(label, ours, region, est, lo, hi, region.verdict(lo, hi), cells=cells)


def fixed_part(label: str, value: float, region: Region, ours: str, cells: tuple = ()) -> Part:
    """A part without an interval (a single measurement, or a deterministic check): verdict on the value itself."""
    return Part(label, ours, region, value, value, value, region.verdict(value, value), interval=False, cells=cells)


def guarded(label: str, compute: Callable[[], Part | list[Part]]) -> list[Part]:
    """``compute()``'s parts, or one inconclusive part saying why its inputs are unavailable."""
    try:
        out = compute()
    except Unavailable as e:
        return [Part(label, note=str(e))]
    return out if isinstance(out, list) else [out]


_RANK = {NOT_REPRODUCED: 0, INCONCLUSIVE: 1, REPRODUCED: 2}


def combine(parts: Sequence[Part]) -> tuple[str, Part | None]:
    """The row's verdict (reproduced iff every part is, not reproduced iff some part is not) and its least
    favourable part with an estimate (for the estimate and interval columns), None if no part has one.
    Diagnostic parts are left out (:func:`diagnostic_note` reads them)."""
    parts = [p for p in parts if not p.diagnostic]
    verdicts = [p.verdict for p in parts]
    if parts and all(v == REPRODUCED for v in verdicts):
        verdict = REPRODUCED
    elif NOT_REPRODUCED in verdicts:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    scored = [p for p in parts if math.isfinite(p.estimate) and p.region is not None]
    worst = min(scored, key=lambda p: (_RANK[p.verdict], p.region.margin(p.lo, p.hi)), default=None)
    return verdict, worst


# ----------------------------------------------------------------------------------------------------------
# The paper's evidence, from report/paper.py
# ----------------------------------------------------------------------------------------------------------
def _published_max(values: dict[str, str]) -> tuple[str, str]:
    """The (label, published string) of the largest published value."""
    return max(values.items(), key=lambda kv: paper.parse_published(kv[1]))


def _published_min(values: dict[str, str]) -> tuple[str, str]:
    return min(values.items(), key=lambda kv: paper.parse_published(kv[1]))


def _ratio_text(num: str, den: str) -> str:
    return f"{num}/{den} = {paper.parse_published(num) / paper.parse_published(den):.2f}"


def _paper_texts() -> dict[str, str]:
    t3 = paper.TABLE3
    t3_models = tables.TABLE3_MODELS.values()
    t4_tasks = paper.TABLE4_TASK_LABELS

    def es3(editor: str, label: str) -> str:
        return t3[(editor, f"{label} ES")]

    def es4(editor: str, task: str) -> str:
        return paper.TABLE4[(editor, f"{t4_tasks[task]} ES")]

    def es5(editor: str, k: int) -> str:
        return paper.TABLE5[(editor, paper.table5_column("ES", k))]

    def es6(row: str, task: str) -> str:
        return paper.TABLE6[(row, f"{t4_tasks[task]} ES")]

    texts = {}
    texts["T3.1"] = "Table 3 ES: " + "; ".join(
        f"{m}: MEND {es3('MEND', m)} vs max(FT, FT+KL, KE) "
        f"{_published_max({e: es3(e, m) for e in ('FT', 'FT+KL', 'KE')})[1]}"
        for m in t3_models
    )
    texts["T3.2"] = "Table 3 ES: " + "; ".join(
        f"{m}: KE {es3('KE', m)} vs min(FT, FT+KL, MEND) "
        f"{_published_min({e: es3(e, m) for e in ('FT', 'FT+KL', 'MEND')})[1]}"
        for m in t3_models
    )
    wiki3 = [label for m, label in tables.TABLE3_MODELS.items() if tables.TABLE3_TASKS[m] == "wikitext"]
    texts["T3.3"] = "Table 3 ppl DD: " + "; ".join(
        f"{m}: FT {t3[('FT', f'{m} DD')]} vs MEND {t3[('MEND', f'{m} DD')]}" for m in wiki3
    )
    worst = {
        e: _published_min({task: es4(e, task) for task in paper.TABLE4_TASKS})
        for e in ("ENN", "MEND", "FT", "KE", "FT+KL")
    }
    texts["T4.1"] = "Table 4 worst-task ES: " + ", ".join(
        f"{e} {v} ({t4_tasks[t]})"
        for e, (t, v) in sorted(worst.items(), key=lambda kv: -paper.parse_published(kv[1][1]))
    )
    texts["T4.2"] = "Table 4 ES: " + "; ".join(
        f"{t4_tasks[t]}: MEND {es4('MEND', t)} vs FT {es4('FT', t)}, FT+KL {es4('FT+KL', t)}"
        for t in paper.TABLE4_TASKS
    )
    texts["T4.3"] = (
        f"Table 4 Wikitext ppl DD: FT {paper.TABLE4[('FT', 'Wikitext DD')]} vs FT+KL "
        f"{paper.TABLE4[('FT+KL', 'Wikitext DD')]}"
    )
    texts["T4.4"] = "Section 5.2 (text): ENN meta-trains the base model; MEND, KE and FT leave it as it is"
    texts["T5.1"] = "Table 5 ES: " + "; ".join(
        f"k={k}: MEND {es5('MEND', k)} vs ENN {es5('ENN', k)}" for k in paper.TABLE5_BATCH_SIZES if k >= 25
    )
    k_max = max(paper.TABLE5_BATCH_SIZES)
    texts["T5.2"] = (
        f"Table 5 ES k={k_max}/k=1: MEND {_ratio_text(es5('MEND', k_max), es5('MEND', 1))}; "
        f"ENN {_ratio_text(es5('ENN', k_max), es5('ENN', 1))}"
    )
    texts["T5.3"] = "Table 5 MEND acc DD: " + ", ".join(
        f"k={k} {paper.TABLE5[('MEND', paper.table5_column('DD', k))]}" for k in paper.TABLE5_BATCH_SIZES
    )
    texts["T6.1"] = (
        f"Table 6 Wikitext ES: No norm {es6('No norm', 'wikitext')}, No ID init {es6('No ID init', 'wikitext')} "
        f"vs MEND {es6('MEND', 'wikitext')}"
    )
    texts["T6.2"] = "Table 6 ES, No sharing vs MEND: " + "; ".join(
        f"{t4_tasks[t]} {es6('No sharing', t)} vs {es6('MEND', t)}" for t in ("wikitext", "zsre")
    )
    texts["T6.3"] = "Table 6 ES, Only smaller vs MEND: " + "; ".join(
        f"{t4_tasks[t]} {es6('Only smaller', t)} vs {es6('MEND', t)}" for t in ("wikitext", "zsre")
    )
    texts["T6.4"] = (
        "Table 6 zsRE ES: "
        + ", ".join(f"{row} {es6(row, 'zsre')}" for row in paper.TABLE6_EDITORS if row != "MEND")
        + f" vs MEND {es6('MEND', 'zsre')}"
    )
    texts["F3.1"] = "Figure 3 (text): ENN's training memory is far above MEND's and KE's at large sizes"
    texts["G.1"] = "Section 5.2 and Appendix G (text): caching is strong on zsRE and FEVER and fails on Wikitext"
    return texts


# ----------------------------------------------------------------------------------------------------------
# The claims
# ----------------------------------------------------------------------------------------------------------
LABELS = {**tables.EDITOR_LABELS, **paper.TABLE6_VARIANTS}


def label(editor: str) -> str:
    base, _, k = editor.partition("-k")
    if k.isdigit():
        return f"{LABELS.get(base, base)} k={k}"
    return LABELS.get(editor, editor)


@dataclass
class Context:
    runs: Runs
    tables_cfg: dict
    boot: Boot
    probes: pd.DataFrame | None

    def experiments(self, table: str, task: str | None = None) -> list[tuple[str, str]]:
        """(task, model) of a configured table's experiments (of one task); Unavailable when there are none."""
        t = self.tables_cfg.get(table)
        if not t:
            raise Unavailable(f"not run: the profile has no {table}")
        out = [(e["task"], e["model"]) for e in t.get("experiments", []) if task is None or e["task"] == task]
        if not out:
            raise Unavailable(f"not run: {table} has no experiment" + (f" on {task}" if task else ""))
        return out

    def editors(self, table: str) -> list[str]:
        return list(self.tables_cfg.get(table, {}).get("editors", []))

    def ks(self) -> list[int]:
        """Table 5's configured k, less those that are only width-scaled k (:meth:`scaled`)."""
        t = self.tables_cfg.get("table5")
        if not t:
            raise Unavailable("not run: the profile has no table5")
        ks = {int(b["k"]) for b in t.get("batches", [{"k": 1}])}
        pairs = self.scaled()
        return sorted(ks - (set(pairs.values()) - set(pairs)))

    def scaled(self) -> dict[int, int]:
        """paper k -> its width-scaled k (``tables.table5.k_scaling``, checked by the workflow); empty when the
        profile declares no width rule (the paper's k are then the claims' only reading)."""
        spec = (self.tables_cfg.get("table5") or {}).get("k_scaling") or {}
        return {int(k): int(s) for k, s in zip(spec.get("paper_k", []), spec.get("scaled_k", []), strict=True)}


def _cells(sample: Sample) -> tuple:
    n_per_seed = sample.n // max(len(sample.seeds), 1)
    return tuple((sample.task, sample.model, e, tuple(sample.seeds), n_per_seed) for e in sample.editors)


def _where(task: str, model: str) -> str:
    return f"{task}/{model}"


def _table3_label(model: str) -> str:
    return tables.TABLE3_MODELS.get(model, model)


def claim_t3_1(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table3"):

        def part(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["mend", "ft", "ftkl", "ke"])
            mend, others = ctx.boot.es(s, "mend"), {e: ctx.boot.es(s, e) for e in ("ft", "ftkl", "ke")}
            best = max(others, key=lambda e: others[e][0])
            ours = f"MEND {fmt(mend[0])} vs max(FT, FT+KL, KE) {fmt(others[best][0])} ({label(best)})"
            reps = mend - np.max(np.stack(list(others.values())), axis=0)
            return bootstrap_part(_table3_label(model), reps, Region(">"), ours, _cells(s))

        parts += guarded(_table3_label(model), part)
    return parts


def claim_t3_2(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table3"):

        def part(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["ke", "ft", "ftkl", "mend"])
            ke, others = ctx.boot.es(s, "ke"), {e: ctx.boot.es(s, e) for e in ("ft", "ftkl", "mend")}
            low = min(others, key=lambda e: others[e][0])
            ours = f"KE {fmt(ke[0])} vs min(FT, FT+KL, MEND) {fmt(others[low][0])} ({label(low)})"
            reps = np.min(np.stack(list(others.values())), axis=0) - ke
            return bootstrap_part(_table3_label(model), reps, Region(">"), ours, _cells(s))

        parts += guarded(_table3_label(model), part)
    return parts


def _dd_pair(ctx: Context, task: str, model: str, high: str, low: str, part_label: str) -> Part:
    """Part "DD(high) − DD(low) > 0" on one experiment."""
    s = ctx.runs.sample(task, model, [high, low])
    a, b = ctx.boot.dd(s, high), ctx.boot.dd(s, low)
    ours = f"{s.dd_kind} DD {label(high)} {fmt(a[0])} vs {label(low)} {fmt(b[0])}"
    return bootstrap_part(part_label, a - b, Region(">"), ours, _cells(s))


def claim_t3_3(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table3", "wikitext"):
        parts += guarded(
            _table3_label(model), lambda t=task, m=model: _dd_pair(ctx, t, m, "ft", "mend", _table3_label(m))
        )
    return parts


T4_FIVE = ("ft", "ftkl", "enn", "ke", "mend")


def claim_t4_1(ctx: Context) -> list[Part]:
    experiments = ctx.experiments("table4")

    def part() -> Part:
        samples = [ctx.runs.sample(t, m, list(T4_FIVE)) for t, m in experiments]
        es = {e: np.stack([ctx.boot.es(s, e) for s in samples]) for e in T4_FIVE}  # (tasks, n_boot + 1)
        worst = {e: v.min(axis=0) for e, v in es.items()}
        worst_task = {e: experiments[int(np.argmin(v[:, 0]))][0] for e, v in es.items()}
        reps = np.minimum(worst["enn"], worst["mend"]) - np.maximum.reduce([worst[e] for e in ("ft", "ftkl", "ke")])
        ours = "worst-task ES: " + ", ".join(
            f"{label(e)} {fmt(worst[e][0])} ({worst_task[e]})" for e in sorted(T4_FIVE, key=lambda e: -worst[e][0])
        )
        cells = tuple(c for s in samples for c in _cells(s))
        return bootstrap_part("Table 4", reps, Region(">"), ours, cells)

    return guarded("Table 4", part)


def claim_t4_2(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table4"):

        def part(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["mend", "ft", "ftkl"])
            mend, ft, ftkl = (ctx.boot.es(s, e) for e in ("mend", "ft", "ftkl"))
            ours = f"MEND {fmt(mend[0])} vs FT {fmt(ft[0])}, FT+KL {fmt(ftkl[0])}"
            return bootstrap_part(task, mend - np.maximum(ft, ftkl), Region(">"), ours, _cells(s))

        parts += guarded(task, part)
    return parts


def claim_t4_3(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table4", "wikitext"):
        parts += guarded(task, lambda t=task, m=model: _dd_pair(ctx, t, m, "ft", "ftkl", t))
    return parts


def claim_t4_4(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table4"):

        def enn(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["enn"])
            reps = ctx.boot.mean_abs_dnll(s, "enn")
            ours = f"mean abs(nll_before − nll_original) {fmt(reps[0])}"
            return bootstrap_part(f"{task} ENN", reps, Region(">"), ours, _cells(s))

        parts += guarded(f"{task} ENN", enn)
        for editor in ("mend", "ke", "ft"):

            def unchanged(task=task, model=model, editor=editor) -> Part:
                s = ctx.runs.sample(task, model, [editor])
                value = float(s.col(editor, "dmax").max())
                ours = f"max abs(nll_before − nll_original) {value:.3g}"
                return fixed_part(f"{task} {label(editor)}", value, Region("≤"), ours, _cells(s))

            parts += guarded(f"{task} {label(editor)}", unchanged)
    return parts


def _k_editor(editor: str, k: int) -> str:
    return editor if k == 1 else f"{editor}-k{k}"


def _t5_readings(ctx: Context, ks: Sequence[int]) -> list[tuple[str, int, bool]]:
    """(part label, k evaluated, diagnostic) for the paper's ``ks``: where the profile declares a width rule,
    each at its scaled k (the verdict: the matched-scale reading, docs/method.md) and then at the paper's own k
    (a diagnostic beside it); otherwise at the paper's k only."""
    pairs = ctx.scaled()
    if not pairs:
        return [(f"k={k}", k, False) for k in ks]
    missing = [k for k in ks if k not in pairs]
    if missing:
        raise Unavailable(f"tables.table5.k_scaling gives no scaled k for the paper's k {missing}")
    scaled = [(f"k={k} (scaled: {pairs[k]})", pairs[k], False) for k in ks]
    return scaled + [(f"paper k={k}", k, True) for k in ks]


def _diagnostic(parts: list[Part], diagnostic: bool) -> list[Part]:
    for p in parts:
        p.diagnostic = diagnostic
    return parts


def claim_t5_1(ctx: Context) -> list[Part]:
    pairs = ctx.scaled()
    paper_ks = [k for k in (pairs or ctx.ks()) if k >= 25]
    if not paper_ks:
        raise Unavailable("not run: table5 has no k ≥ 25")
    parts = []
    for task, model in ctx.experiments("table5"):
        for lab, k, diag in _t5_readings(ctx, paper_ks):

            def part(task=task, model=model, k=k, lab=lab) -> Part:
                mend, enn = _k_editor("mend", k), _k_editor("enn", k)
                s = ctx.runs.sample(task, model, [mend, enn], k)
                a, b = ctx.boot.es(s, mend), ctx.boot.es(s, enn)
                return bootstrap_part(lab, a - b, Region(">"), f"MEND {fmt(a[0])} vs ENN {fmt(b[0])}", _cells(s))

            parts += _diagnostic(guarded(lab, part), diag)
    return parts


def claim_t5_2(ctx: Context) -> list[Part]:
    pairs = ctx.scaled()
    ks = ctx.ks()
    k_max = 125 if 125 in (pairs or ks) else max(pairs or ks)
    if k_max <= 1:
        raise Unavailable("not run: table5 has no k > 1")
    parts = []
    for task, model in ctx.experiments("table5"):
        for lab, k, diag in _t5_readings(ctx, [k_max]):
            for editor, region in (("mend", Region("≥", 0.5)), ("enn", Region("<", 0.5))):
                part_label = f"{label(editor)} {lab}" if pairs else label(editor)

                def part(task=task, model=model, editor=editor, region=region, k=k, part_label=part_label) -> Part:
                    if k <= 1:
                        raise Unavailable(f"k = {k_max} scales to k = 1: no batch to compare with one edit")
                    one = ctx.runs.sample(task, model, [editor], 1)
                    big = ctx.runs.sample(task, model, [_k_editor(editor, k)], k)
                    # The two runs evaluate different edits: each is resampled on its own (independent weights).
                    a, b = ctx.boot.es(big, _k_editor(editor, k)), ctx.boot.es(one, editor)
                    ours = f"ES k={k} {fmt(a[0])} / k=1 {fmt(b[0])}"
                    return bootstrap_part(part_label, ratio(a, b), region, ours, _cells(one) + _cells(big))

                parts += _diagnostic(guarded(part_label, part), diag)
    if k_max != 125:
        for p in parts:
            p.note = "; ".join(x for x in (p.note, f"largest configured k = {k_max} (the paper's is 125)") if x)
    return parts


def claim_t5_3(ctx: Context) -> list[Part]:
    pairs = ctx.scaled()
    parts = []
    for task, model in ctx.experiments("table5"):
        readings = _t5_readings(ctx, sorted(pairs) if pairs else ctx.ks())
        # Paper k that scale to the same k (1 and 5 -> 1) are one part: the same runs.
        merged: dict[tuple[int, bool], list[str]] = {}
        for lab, k, diag in readings:
            merged.setdefault((k, diag), []).append(lab)
        for (k, diag), labs in merged.items():
            lab = labs[0] if len(labs) == 1 else f"k={'/'.join(x.split()[0][2:] for x in labs)} (scaled: {k})"

            def part(task=task, model=model, k=k, lab=lab) -> Part:
                editor = _k_editor("mend", k)
                s = ctx.runs.sample(task, model, [editor], k)
                reps = ctx.boot.dd(s, editor)
                return bootstrap_part(lab, reps, Region("≤", 0.05), f"{s.dd_kind} DD {fmt(reps[0])}", _cells(s))

            parts += _diagnostic(guarded(lab, part), diag)
    return parts


def _es_ratio(ctx: Context, task: str, model: str, variant: str, region: Region, part_label: str) -> Part:
    """Part "ES(variant)/ES(mend) in region", paired on the edits both saw."""
    s = ctx.runs.sample(task, model, ["mend", variant])
    a, b = ctx.boot.es(s, variant), ctx.boot.es(s, "mend")
    ours = f"ES {fmt(a[0])} / MEND {fmt(b[0])}"
    return bootstrap_part(part_label, ratio(a, b), region, ours, _cells(s))


def claim_t6_1(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table6", "wikitext"):
        for variant in ("mend-no_norm", "mend-no_id_init"):
            lab = label(variant)
            parts += guarded(
                lab, lambda t=task, m=model, v=variant, lab=lab: _es_ratio(ctx, t, m, v, Region("≤", 0.5), lab)
            )
    return parts


def claim_t6_2(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table6"):

        def part(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["mend-no_sharing", "mend"])
            a, b = ctx.boot.es(s, "mend-no_sharing"), ctx.boot.es(s, "mend")
            ours = f"No sharing {fmt(a[0])} vs MEND {fmt(b[0])}"
            return bootstrap_part(task, a - b, Region("within", 0.05), ours, _cells(s))

        parts += guarded(task, part)
    return parts


def claim_t6_3(ctx: Context) -> list[Part]:
    parts = []
    for task, model in ctx.experiments("table6"):
        parts += guarded(task, lambda t=task, m=model: _es_ratio(ctx, t, m, "mend-only_smaller", Region("≥", 0.85), t))
    return parts


def claim_t6_4(ctx: Context) -> list[Part]:
    variants = [e for e in ctx.editors("table6") if e != "mend"] or [e for e in paper.TABLE6_VARIANTS if e != "mend"]
    parts = []
    for task, model in ctx.experiments("table6", "zsre"):
        for variant in variants:
            lab = label(variant)
            parts += guarded(
                lab, lambda t=task, m=model, v=variant, lab=lab: _es_ratio(ctx, t, m, v, Region("≥", 0.9), lab)
            )
    return parts


def claim_f3_1(ctx: Context) -> list[Part]:
    if ctx.probes is None or ctx.probes.empty:
        raise Unavailable("not run: no memory-probe files")
    parts = []
    for size, rows in ctx.probes.groupby("size", sort=False):
        peaks = dict(zip(rows["editor"], rows["peak_mb"], strict=True))

        def part(size=size, peaks=peaks, kind=rows["memory_kind"].iloc[0]) -> Part:
            missing = [e for e in ("enn", "mend", "ke") if e not in peaks]
            if missing:
                raise Unavailable(f"not run: {', '.join(missing)} not probed at {size}")
            other = max(peaks["mend"], peaks["ke"])
            ours = f"ENN {peaks['enn']:.1f} vs MEND {peaks['mend']:.1f}, KE {peaks['ke']:.1f} MiB ({kind})"
            return fixed_part(str(size), float(peaks["enn"] - other), Region(">"), ours)

        parts += guarded(str(size), part)
    return parts


def claim_g_1(ctx: Context) -> list[Part]:
    experiments = ctx.experiments("table4")
    parts = []
    for task, model in experiments:
        if task not in ("zsre", "fever"):
            continue

        def part(task=task, model=model) -> Part:
            s = ctx.runs.sample(task, model, ["cache", "mend"])
            a, b = ctx.boot.es(s, "cache"), ctx.boot.es(s, "mend")
            return bootstrap_part(task, a - b, Region("≥"), f"ES Cache {fmt(a[0])} vs MEND {fmt(b[0])}", _cells(s))

        parts += guarded(task, part)
    for task, model in experiments:
        if task != "wikitext":
            continue

        def wiki(task=task, model=model) -> Part:
            # The paper's editors only: an extra row of ours (FT+L) is not what Appendix G compares against.
            others = [e for e in ctx.editors("table4") if e in T4_FIVE]
            if not others:
                raise Unavailable("not run: table4 has none of the paper's editors besides the cache")
            s = ctx.runs.sample(task, model, ["cache", *others])
            cache = ctx.boot.dd(s, "cache")
            dds = {e: ctx.boot.dd(s, e) for e in others}
            top = max(others, key=lambda e: dds[e][0])
            ours = f"{s.dd_kind} DD Cache {fmt(cache[0])} vs max of the others {fmt(dds[top][0])} ({label(top)})"
            reps = cache - np.max(np.stack(list(dds.values())), axis=0)
            return bootstrap_part(task, reps, Region(">"), ours, _cells(s))

        parts += guarded(task, wiki)
    if not parts:
        raise Unavailable("not run: table4 has no zsre, fever or wikitext experiment")
    return parts


CLAIMS: dict[str, Callable[[Context], list[Part]]] = {
    "T3.1": claim_t3_1,
    "T3.2": claim_t3_2,
    "T3.3": claim_t3_3,
    "T4.1": claim_t4_1,
    "T4.2": claim_t4_2,
    "T4.3": claim_t4_3,
    "T4.4": claim_t4_4,
    "T5.1": claim_t5_1,
    "T5.2": claim_t5_2,
    "T5.3": claim_t5_3,
    "T6.1": claim_t6_1,
    "T6.2": claim_t6_2,
    "T6.3": claim_t6_3,
    "T6.4": claim_t6_4,
    "F3.1": claim_f3_1,
    "G.1": claim_g_1,
}
assert tuple(CLAIMS) == CLAIM_IDS


# ----------------------------------------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------------------------------------
def _training_notes(parts: Sequence[Part], summaries: Sequence[TrainSummary]) -> list[str]:
    """What the trainings behind a claim's cells say of themselves: a step cap hit, a kept checkpoint outside the
    drawdown budget (every validation of that training was outside it)."""
    used = {(t, m, e, s) for p in parts for t, m, e, seeds, *_ in p.cells for s in seeds}
    mine = [x for x in summaries if (x.task, x.model, x.editor, x.seed) in used]
    return [f"step cap hit: {x.editor} ({x.task}/{x.model}, seed {x.seed})" for x in mine if x.hit_step_cap] + [
        f"kept outside the budget: {x.editor} ({x.task}/{x.model}, seed {x.seed})"
        for x in mine
        if x.kept_outside_budget
    ]


def diagnostic_note(parts: Sequence[Part]) -> str:
    """``"at the paper's k (diagnostic, not the verdict): not reproduced, −0.2 [−0.3, −0.1] (paper k=25)"``: the
    verdict the diagnostic parts would give as a claim of their own; empty without diagnostic parts."""
    diag = [dataclasses.replace(p, diagnostic=False) for p in parts if p.diagnostic]
    if not diag:
        return ""
    verdict, worst = combine(diag)
    where = ""
    if worst is not None:
        stat = f"{fmt(worst.estimate)} [{fmt(worst.lo)}, {fmt(worst.hi)}]" if worst.interval else fmt(worst.estimate)
        where = f", {stat} ({worst.label})"
    return f"at the paper's k (diagnostic, not the verdict): {verdict}{where}"


def claim_row(
    claim: str, parts: list[Part], paper_text: str, summaries: Sequence[TrainSummary], samples: Sequence[Sample] = ()
) -> dict:
    """The table row of one claim from its parts (and the notes of the samples it used)."""
    verdict, worst = combine(parts)
    scored = [p for p in parts if not p.diagnostic]
    notes = [f"{p.label}: {p.note}" if p.label and len(parts) > 1 else p.note for p in parts if p.note]
    notes += [n for s in samples for n in s.notes]
    if diagnostic_note(parts):
        notes.insert(0, diagnostic_note(parts))
    if worst is not None and len(scored) > 1:
        notes.append(f"estimate and interval: {worst.label}")
    if worst is not None and not worst.interval:
        notes.append("single measurement or exact check: no interval")
    notes += _training_notes(parts, summaries)
    ours = "; ".join(p.describe() for p in parts if math.isfinite(p.estimate) or p.ours != tables.MISSING)
    has_interval = worst is not None and worst.interval
    return {
        "claim": claim,
        "statement": STATEMENTS[claim],
        "paper": paper_text,
        "ours": ours or tables.MISSING,
        "estimate": worst.estimate if worst is not None else math.nan,
        "ci_low": worst.lo if has_interval else math.nan,
        "ci_high": worst.hi if has_interval else math.nan,
        "verdict": verdict,
        "notes": "; ".join(dict.fromkeys(notes)),
    }


def claims_table(
    runs: Runs,
    tables_cfg: dict,
    *,
    summaries: Sequence[TrainSummary] = (),
    probes: pd.DataFrame | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    only: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per claim (:data:`COLUMNS`). Each claim draws its resamples from its own generator, seeded by
    (``seed``, the claim's position), so a claim's interval does not depend on which other claims are run."""
    if n_boot < 1:
        raise ValueError(f"--n-boot must be at least 1, got {n_boot}")
    texts = _paper_texts()
    rows = []
    for i, (claim, fn) in enumerate(CLAIMS.items()):
        if only is not None and claim not in only:
            continue
        ctx = Context(runs, tables_cfg, Boot(np.random.default_rng([seed, i]), n_boot), probes)
        runs.touched = []
        try:
            parts = fn(ctx)
        except Unavailable as e:
            parts = [Part("", note=str(e))]
        if not parts:
            parts = [Part("", note="not run: no experiment of this claim is configured")]
        rows.append(claim_row(claim, parts, texts[claim], summaries, runs.touched))
    return pd.DataFrame(rows, columns=COLUMNS)


def load_runs(paths: Iterable[str | Path]) -> Runs:
    """The runs of these metrics files (a file given twice is read once)."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    return Runs(read_run(r) for r in tables.read_metrics_records(unique))


def load_probes(paths: Sequence[str | Path]) -> pd.DataFrame | None:
    """The memory-probe rows (the memory-probe report's reader), None without files."""
    if not paths:
        return None
    from mendrepro.report import figures  # matplotlib only when a figure is drawn

    return figures.load_probes(paths)


def caption(df: pd.DataFrame, runs: Runs, profile: str, n_boot: int, seed: int) -> str:
    counts = df["verdict"].value_counts()
    seeds = runs.seeds
    seed_text = (
        f"seeds {seeds}: two-level bootstrap (seeds with replacement, then edit ids within each drawn seed, "
        "pairing by (seed, id)); estimates pool all seeds"
        if len(seeds) > 1
        else f"seed {seeds[0] if seeds else 0}"
    )
    return (
        f"The paper's claims ({paper.CITATION}; PAPER_SPEC's list) checked on our raw per-edit records, profile "
        f"{profile}. estimate = the claim's statistic on all our records; [ci_low, ci_high] = 95% percentile "
        f"bootstrap interval over {n_boot} resamples of the edit ids, the same ids for every editor compared "
        f"(paired by id; RNG seed {seed}); {seed_text}. ES and DD are recomputed from each resample as the "
        "evaluation aggregates them (ppl DD pooled: exp(ΣNLL/Σtokens) after − before). Verdict: reproduced when "
        "the whole interval is in the claimed region, not reproduced when it is wholly outside, inconclusive "
        "otherwise or when inputs are missing; a claim over several parts (models, tasks, k, sizes) is reproduced "
        "iff every part is and not reproduced iff some part is not, its estimate and interval are those of the "
        "least favourable part. T5.1–T5.3, where the profile declares Table 5's width rule "
        "(tables.table5.k_scaling): the verdict reads each paper k at its width-scaled k (k=125 (scaled: 21)); the "
        "paper's own k (parts 'paper k=…') are a diagnostic beside it, in ours and the notes, not in the verdict. "
        "A ratio with a zero denominator in any resample leaves its part inconclusive. "
        "T4.4 (MEND, KE, FT: pre-edit model = original, exactly) and F3.1 (one memory measurement per size) have "
        f"no interval. Reproduced {counts.get(REPRODUCED, 0)} of {len(df)}; not reproduced "
        f"{counts.get(NOT_REPRODUCED, 0)}; inconclusive {counts.get(INCONCLUSIVE, 0)}."
    )


def _md_cell(value: object, number: bool) -> str:
    if number:
        return "" if value is None or not math.isfinite(float(value)) else fmt(float(value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_claims(df: pd.DataFrame, stem: Path, header: str, text: str) -> list[Path]:
    """``stem.md`` (header, caption, table; numbers to 3 decimals) and ``stem.csv`` (full precision), atomically."""
    numbers = ("estimate", "ci_low", "ci_high")
    md = pd.DataFrame({c: [_md_cell(v, c in numbers) for v in df[c]] for c in df.columns})
    table = md.to_markdown(index=False, stralign="left", numalign="left", disable_numparse=True)
    md_path, csv_path = tables.stem_path(stem, "md"), tables.stem_path(stem, "csv")
    atomic.write_text(md_path, f"# {header}\n\n*{text}*\n\n{table}\n")
    atomic.write_text(csv_path, df.to_csv(index=False, lineterminator="\n"))
    return [md_path, csv_path]


def _run(args: argparse.Namespace) -> list[Path]:
    try:
        tables_cfg = json.loads(args.tables)
    except json.JSONDecodeError as e:
        raise ValueError(f"--tables: not valid JSON ({e})") from e
    if not isinstance(tables_cfg, dict):
        raise ValueError(f"--tables: expected a JSON object (the config's tables section), got {args.tables!r}")
    runs = load_runs(args.metrics)
    summaries = [read_train_summary(Path(p)) for p in args.train]
    probes = load_probes(args.probe)
    df = claims_table(runs, tables_cfg, summaries=summaries, probes=probes, n_boot=args.n_boot, seed=args.seed)
    profile = args.profile or (", ".join(runs.profiles) if runs.profiles else "unknown")
    header = f"The MEND paper's claims: reproduced or not (profile {profile})"
    return write_claims(df, args.out, header, caption(df, runs, profile, args.n_boot, args.seed))


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``claims`` on the report command line (:func:`mendrepro.report.cli.build_parser`)."""
    p = sub.add_parser("claims", help="the paper's claims: statistic, 95%% bootstrap interval and verdict (md, csv)")
    p.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics.json files (edits.jsonl beside)")
    p.add_argument("--train", nargs="*", default=[], type=Path, help="editors' training summaries (train.json)")
    p.add_argument("--probe", nargs="*", default=[], type=Path, help="memory-probe JSON files")
    p.add_argument("--tables", required=True, help="the config's tables section, as JSON")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md and STEM.csv")
    p.add_argument("--profile", default=None, help="profile named in the header (default: from the metrics)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    p.set_defaults(run=_run)
