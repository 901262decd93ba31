"""The paper profile's data inputs, without network: hand-placed files are checked and linked, never owned; Hub
datasets are exported from a local folder or HF cache (mendrepro.data.inputs and workflow/rules/inputs.smk)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import constants as hf_constants

from mendrepro.data.inputs import HubDataset, InputError, PlacedFile, export_hub, link_into, main, place
from mendrepro.data.wikitext import load_wikitext_raw

ROOT = Path(__file__).resolve().parents[1]

# FEVER lines in the release's layout (the fields data_classes/fever.py:26-27 reads, plus KILT's own).
FEVER = [
    {
        "id": str(i),
        "input": f"Claim number {i} holds.",
        "output": [{"answer": "SUPPORTS" if i % 2 else "REFUTES", "provenance": [{"wikipedia_id": "1"}]}],
        "logit": 1.5 if i % 2 else -1.5,
        "prediction": "SUPPORTS" if i % 2 else "REFUTES",
        "alternatives": ["REFUTES" if i % 2 else "SUPPORTS"],
        "filtered_rephrases": [f"It is true that claim {i} holds."],
    }
    for i in range(4)
]


def _fever_text(records: list[dict] = FEVER) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _state(path: Path) -> tuple:
    """What must not change about a user's file: its bytes, inode, mode and times."""
    st = path.stat()
    return path.read_bytes(), st.st_ino, st.st_mode, st.st_mtime_ns, st.st_ctime_ns


def _spec(tmp_path: Path, sha: str | None = None) -> PlacedFile:
    return PlacedFile(
        key="fever_dev",
        expected=str(tmp_path / "placed" / "fever" / "fever-dev-kilt.jsonl"),
        source="the release's data folder (fever/)",
        sha256=sha,
    )


# ---------------------------------------------------------------------------------------------------------------
# placed files, as functions


def test_placed_file_is_checked_and_linked_never_changed(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "placed" / "fever" / "fever-dev-kilt.jsonl"
    src.parent.mkdir(parents=True)
    src.write_text(_fever_text())
    before = _state(src)
    out = tmp_path / "results" / "inputs" / "fever" / "fever-dev-kilt.jsonl"
    with caplog.at_level("WARNING"):
        assert place(_spec(tmp_path), src, out) == 4
    assert hashlib.sha256(src.read_bytes()).hexdigest() in caplog.text  # the hash to pin
    assert out.is_symlink() and os.readlink(out) == "../../../placed/fever/fever-dev-kilt.jsonl"
    assert out.read_bytes() == src.read_bytes() and _state(src) == before
    # Pinned and matching: linked again (the old link replaced atomically); no temporary left beside it.
    assert place(_spec(tmp_path, hashlib.sha256(src.read_bytes()).hexdigest()), src, out) == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["fever-dev-kilt.jsonl"] and _state(src) == before
    # Deleting the output (what Snakemake does before a rerun) deletes the link only.
    out.unlink()
    assert _state(src) == before


def test_pinned_sha256_mismatch_fails_first_naming_both_hashes(tmp_path):
    src = tmp_path / "fever-dev-kilt.jsonl"
    src.write_text("not even JSON\n")  # the hash is checked before the format
    before = _state(src)
    pinned = "ab" * 32
    with pytest.raises(InputError) as e:
        place(_spec(tmp_path, pinned), src, tmp_path / "out.jsonl")
    got = hashlib.sha256(src.read_bytes()).hexdigest()
    msg = str(e.value)
    assert f"{src} has sha256 {got}, but the config pins {pinned}" in msg and "\n" not in msg
    assert not (tmp_path / "out.jsonl").exists() and _state(src) == before


def test_format_is_checked_always(tmp_path):
    src = tmp_path / "fever-dev-kilt.jsonl"
    plain = [{k: r[k] for k in ("id", "input", "output")} for r in FEVER]  # KILT's own FEVER lines
    src.write_text(_fever_text(plain))
    with pytest.raises(InputError, match=r"fever_dev: .*fever-dev-kilt\.jsonl:1: a plain KILT FEVER record") as e:
        place(_spec(tmp_path), src, tmp_path / "out.jsonl")
    assert "fever/fever-{train,dev}-kilt.jsonl" in str(e.value)
    src.write_text(_fever_text([dict(r, filtered_rephrases=[]) for r in FEVER]))
    with pytest.raises(InputError, match="holds no usable records"):
        place(_spec(tmp_path), src, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_placed_file_says_where_it_goes(tmp_path):
    spec = _spec(tmp_path)
    with pytest.raises(InputError) as e:
        place(spec, None, tmp_path / "out.jsonl")
    first = str(e.value).splitlines()[0]
    assert first.startswith(f"Cannot get fever_dev: {spec.expected} is not on disk; place it there by hand")
    assert spec.source in first and "data.mirror" in str(e.value)


def test_the_placed_file_itself_is_never_an_output(tmp_path):
    src = tmp_path / "f.jsonl"
    src.write_text(_fever_text())
    before = _state(src)
    with pytest.raises(InputError, match="is the placed file itself"):
        link_into(src, src)
    assert _state(src) == before


# ---------------------------------------------------------------------------------------------------------------
# Hub datasets, from a local folder (the mirror) and from the HF cache, offline

WIKI_ROWS = ["", " = Heading = \n", ""] + [f" Paragraph {i} : " + "word " * 60 + ". \n" for i in range(11)]


def _parquet(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": rows}), path)
    return path


@pytest.fixture
def hf_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read from the environment at import time
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


def _wikitext(**kw) -> HubDataset:
    spec = {
        "key": "wiki_train",
        "repo_id": "Salesforce/wikitext",
        "revision": "b08601e04326c79dfdd32d625aee71d232d685c3",
        "files": "wikitext-103-raw-v1/train-*.parquet",
        "split": "train[:50%]",
    }
    return HubDataset.from_spec({**spec, **kw})


def test_wikitext_from_a_local_dataset_folder(hf_offline, tmp_path):
    mirror = tmp_path / "mirror"
    repo = mirror / "datasets" / "Salesforce" / "wikitext" / "wikitext-103-raw-v1"
    # Two shards, read in name order; the split expression takes the first half of their rows.
    _parquet(repo / "train-00001-of-00002.parquet", WIKI_ROWS[6:])
    _parquet(repo / "train-00000-of-00002.parquet", WIKI_ROWS[:6])
    _parquet(repo / "validation-00000-of-00001.parquet", ["never read"])
    out = tmp_path / "results" / "wiki.train.raw"
    n = len(WIKI_ROWS) // 2  # 14 rows: 50% is 7
    assert export_hub(_wikitext(), out, mirror=str(mirror)) == n
    assert out.read_text() == "".join(r.rstrip("\n") + "\n" for r in WIKI_ROWS[:n])
    assert load_wikitext_raw(out) == [r.strip() for r in WIKI_ROWS[3:n]]
    assert [p.name for p in out.parent.iterdir()] == ["wiki.train.raw"]  # the arrow scratch is gone


def test_openwebtext_split_as_released_from_the_hf_cache(hf_offline, tmp_path):
    # A HF cache holding the parquet conversion branch of stas/openwebtext-10k (data_classes/wiki.py:56-61 splits
    # its rows 90% / 10%).
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "datasets--stas--openwebtext-10k"
    blob = _parquet(repo / "blobs" / "b1", [f"Document {i} of the web." for i in range(20)])
    snapshot = repo / "snapshots" / commit / "plain_text" / "train"
    snapshot.mkdir(parents=True)
    (snapshot / "0000.parquet").symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs" / "refs" / "convert").mkdir(parents=True)  # the cache keeps a ref under its full name
    (repo / "refs" / "refs" / "convert" / "parquet").write_text(commit)
    spec = {
        "repo_id": "stas/openwebtext-10k",
        "revision": "refs/convert/parquet",
        "files": "plain_text/train/*.parquet",
    }
    for key, split, rows in (("owt_train", "train[:90%]", range(18)), ("owt_dev", "train[90%:]", range(18, 20))):
        out = tmp_path / f"{key}.jsonl"
        export_hub(HubDataset.from_spec({"key": key, "split": split, **spec}), out, cache_dir=str(tmp_path / "hf"))
        assert [json.loads(x) for x in out.read_text().splitlines()] == [
            {"text": f"Document {i} of the web."} for i in rows
        ]


def test_hub_dataset_missing_offline_says_how_to_get_it(hf_offline, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    spec = json.dumps({**vars(_wikitext()), "key": "wiki_train"})
    assert main(["hub", "--spec", spec, "--out", str(tmp_path / "wiki.train.raw")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot get wiki_train (Hugging Face dataset Salesforce/wikitext, revision b08601e")
    assert "HF_HUB_OFFLINE=1" in err and "data.mirror" in err and "hf download Salesforce/wikitext" in err
    assert not (tmp_path / "wiki.train.raw").exists()


# ---------------------------------------------------------------------------------------------------------------
# the rules, through Snakemake, on the paper profile


def _workdir(tmp_path: Path, **data) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "workflow", "profiles", "config", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    cfg = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    cfg["data"].update(data)
    # The placed FEVER dev file holds 4 claims; the DAG-start check sizes the held-out split against it.
    cfg["tasks"]["fever"]["n_heldout"] = 1
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _pin(wd: Path, key: str, sha: str | None) -> None:
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    cfg["downloads"][key]["sha256"] = sha
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))


def _snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "run.yaml", "--cores", "1", *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=env)


def test_no_snakemake_invocation_deletes_or_changes_a_placed_file(tmp_path):
    wd = _workdir(tmp_path)
    target = "results/paper/inputs/fever/fever-dev-kilt.jsonl"
    placed = wd / "data/paper/fever/fever-dev-kilt.jsonl"

    proc = _snakemake(wd, target)  # not placed yet: says where it goes
    assert proc.returncode != 0
    assert "Cannot get fever_dev: data/paper/fever/fever-dev-kilt.jsonl is not on disk" in proc.stdout + proc.stderr

    placed.parent.mkdir(parents=True)
    placed.write_text(_fever_text())
    before = _state(placed)
    sha = hashlib.sha256(placed.read_bytes()).hexdigest()
    runs = {
        "first placement": [],
        "rerun": ["--forcerun", "place_fever_dev"],
        "pinned (a param change)": ["pin", sha],
        "touch": ["--touch"],
        "rerun everything": ["--forceall"],
        "delete all output": ["--delete-all-output"],
        "after deletion": [],
    }
    for what, args in runs.items():
        if args[:1] == ["pin"]:
            _pin(wd, "fever_dev", args[1])
            assert "params" in _snakemake(wd, "-n", target).stdout  # Snakemake reruns the job, deleting its output
            args = []
        proc = _snakemake(wd, target, *args)  # the target first: --forcerun would read it as a rule name
        assert proc.returncode == 0, (what, proc.stderr[-3000:])
        assert _state(placed) == before, what
        if what != "delete all output":
            assert (wd / target).is_symlink() and (wd / target).read_bytes() == before[0], what
        if what == "first placement":  # unpinned: the log gives the hash to pin
            assert sha in (wd / "results/paper/logs/fetch/fever_dev.log").read_text()

    _pin(wd, "fever_dev", "cd" * 32)  # another file pinned: fails at once, naming both hashes
    proc = _snakemake(wd, target)
    assert proc.returncode != 0 and f"has sha256 {sha}, but the config pins {'cd' * 32}" in proc.stdout + proc.stderr
    assert _state(placed) == before and sorted(p.name for p in placed.parent.iterdir()) == ["fever-dev-kilt.jsonl"]

    # A new version of the placed file (newer than the link) reruns the check and links it.
    _pin(wd, "fever_dev", None)
    placed.write_text(_fever_text(FEVER[:2]))
    os.utime(placed, ns=(before[3] + 10**9, before[3] + 10**9))
    assert _snakemake(wd, target).returncode == 0
    assert (wd / target).read_bytes() == placed.read_bytes() == _fever_text(FEVER[:2]).encode()


def test_a_data_path_inside_the_placed_folder_is_refused_at_dag_start(tmp_path):
    wd = _workdir(tmp_path, fever_dev="data/paper/fever/fever-dev-kilt.jsonl")
    proc = _snakemake(wd, "-n")
    assert proc.returncode != 0
    message = "data.fever_dev: data/paper/fever/fever-dev-kilt.jsonl lies in data.placed (data/paper)"
    assert message in proc.stdout + proc.stderr


def test_hub_rule_reads_the_mirror_offline(tmp_path):
    mirror = tmp_path / "mirror"
    repo = mirror / "datasets" / "Salesforce" / "wikitext" / "wikitext-103-raw-v1"
    _parquet(repo / "validation-00000-of-00001.parquet", WIKI_ROWS)
    wd = _workdir(tmp_path / "wd", mirror=str(mirror))
    proc = _snakemake(wd, "results/paper/inputs/wikitext/wiki.valid.raw")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = wd / "results/paper/inputs/wikitext/wiki.valid.raw"
    assert not out.is_symlink() and load_wikitext_raw(out) == [r.strip() for r in WIKI_ROWS[3:]]
