"""The paper profile's data files: hand-placed files checked and linked, Hub datasets exported.

Two kinds of input, one rule each (workflow/rules/inputs.smk):

* :class:`PlacedFile`: a file of the MEND release's Google Drive folder (no stable URL), placed by hand under the
  config's ``data.placed`` folder (or ``data.mirror``). No rule writes there, so no Snakemake run, rerun or
  ``--forcerun`` can delete it. The rule checks it (its sha256 when the config pins one, first; its format, always,
  with the loader that will read it) and symlinks it into the DAG's own output, which Snakemake may delete at will.
* :class:`HubDataset`: a split of a Hugging Face dataset (Wikitext-103, OpenWebText-10k) at a pinned revision: the
  repository's parquet files through ``huggingface_hub`` (mirror, HF cache, ``HF_HUB_OFFLINE``; see
  :func:`mendrepro.data.download.fetch_hub`), read by ``datasets`` with the release's split expression (e.g.
  ``train[:10%]``), written as the file the loader reads.

Command line (what the rules run)::

    python -m mendrepro.data.inputs place --spec JSON --out PATH [--src FILE]
    python -m mendrepro.data.inputs hub --spec JSON --out PATH [--mirror DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mendrepro import atomic
from mendrepro.data.download import MIRROR_KEY, DownloadError, HubAsset, fetch_hub, sha256_file
from mendrepro.data.fever import load_fever
from mendrepro.data.formats import DataFormatError, write_jsonl_atomic
from mendrepro.data.nq import load_nq
from mendrepro.data.openwebtext import load_openwebtext
from mendrepro.data.wikitext import load_self_sample, load_wikitext_raw
from mendrepro.data.zsre import load_zsre

log = logging.getLogger(__name__)

# The loader that reads each data key (by its prefix): the format check runs it on the whole file.
LOADERS: dict[str, Callable[[Path], list]] = {
    "zsre": load_zsre,
    "fever": load_fever,
    "nq": load_nq,
    "self_sample": load_self_sample,
    "wiki": lambda p: load_wikitext_raw(p, min_words=0, ascii_only=False),
    "owt": lambda p: load_openwebtext(p, ascii_only=False),
}


class InputError(RuntimeError):
    """A data input is missing, altered or malformed; the message says which file and what to do."""


def loader_for(key: str) -> Callable[[Path], list]:
    for prefix, loader in LOADERS.items():
        if key.startswith(f"{prefix}_"):
            return loader
    raise ValueError(f"no loader for data key {key!r} (prefixes: {', '.join(LOADERS)})")


def check_format(key: str, path: Path) -> int:
    """Read ``path`` with the loader of ``key``; the number of records, or an InputError naming the file."""
    from mendrepro.checks import ConfigError, check_data_file

    try:
        check_data_file(str(path))  # a directory, or a byte that is not UTF-8: its line and column
        n = len(loader_for(key)(path))
    except (DataFormatError, ConfigError) as e:
        raise InputError(f"{key}: {e}") from e
    except (UnicodeDecodeError, IsADirectoryError) as e:
        raise InputError(f"{key}: {path}: not a text file of the expected format ({e})") from e
    if n == 0:
        raise InputError(f"{key}: {path} holds no usable records")
    return n


@dataclass(frozen=True)
class PlacedFile:
    """A hand-placed file: where it goes (``expected``), where else it was looked for, where it comes from."""

    key: str
    expected: str  # <data.placed>/<file>
    source: str
    sha256: str | None = None
    mirror_candidates: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> PlacedFile:
        sha = spec.get("sha256")
        return cls(
            key=spec["key"],
            expected=spec["expected"],
            source=spec["source"],
            sha256=str(sha).lower() if sha else None,
            mirror_candidates=tuple(spec.get("mirror_candidates", ())),
        )

    def missing_message(self) -> str:
        """One line saying what is missing and where to put it, then where else it was looked for."""
        lines = [
            f"Cannot get {self.key}: {self.expected} is not on disk; place it there by hand (no stable download URL),"
            f" from {self.source}",
            f"  expected: {self.expected} (a folder the workflow only reads: no rule writes or deletes files there)",
        ]
        if self.mirror_candidates:
            lines.append(f"  also looked for: {', '.join(self.mirror_candidates)} ({MIRROR_KEY})")
        else:
            lines.append(f"  or set the config key {MIRROR_KEY} to a folder holding it under the same relative path")
        return "\n".join(lines)


def link_into(src: Path, out: Path) -> None:
    """Make ``out`` a symlink to ``src``, atomically; ``src`` is only ever read.

    The link is relative when ``src`` lies under the working directory (the repository), so that it survives moving
    the repository, and absolute otherwise (a mirror elsewhere).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_symlink() and os.path.samefile(out, src):
        raise InputError(f"{out} is the placed file itself: point the data key at a path outside the placed folder")
    src_abs = src.resolve()
    inside = src_abs.is_relative_to(Path.cwd().resolve())
    target = os.path.relpath(src_abs, out.parent.resolve()) if inside else str(src_abs)
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        os.symlink(target, scratch / out.name)
        os.replace(scratch / out.name, out)  # a rename: the link's text moves as it is
    finally:
        (scratch / out.name).unlink(missing_ok=True)
        scratch.rmdir()


def place(spec: PlacedFile, src: Path | None, out: Path) -> int:
    """Check the placed file ``src`` (sha256 when pinned, then its format) and link ``out`` to it; its records."""
    if src is None and Path(spec.expected).is_dir():
        raise InputError(f"Cannot get {spec.key}: {spec.expected} is a directory; place the file itself there")
    if src is None or not src.is_file():
        raise InputError(spec.missing_message())
    got = sha256_file(src)
    if spec.sha256 is not None and got != spec.sha256:
        raise InputError(
            f"{spec.key}: {src} has sha256 {got}, but the config pins {spec.sha256}: put the pinned file there, or pin"
            " the new hash if this file is the one you mean"
        )
    n = check_format(spec.key, src)
    if spec.sha256 is None:
        log.warning("%s: %s is not pinned; its sha256 is %s (pin it as inputs.%s.sha256)", spec.key, src, got, spec.key)
    link_into(src, out)
    log.info("%s: %s checked (%d records) and linked from %s", spec.key, src, n, out)
    return n


@dataclass(frozen=True)
class HubDataset:
    """A split of a Hub dataset's parquet files, written as a data file: Wikitext raw lines or JSON lines."""

    key: str
    repo_id: str
    revision: str
    files: str  # glob of the parquet files in the repository, e.g. "wikitext-103-raw-v1/train-*.parquet"
    split: str  # a datasets split expression over those files, e.g. "train[:10%]"
    column: str = "text"

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HubDataset:
        fields = ("key", "repo_id", "revision", "files", "split", "column")
        return cls(**{k: str(spec[k]) for k in fields if k in spec})

    @property
    def asset(self) -> HubAsset:
        return HubAsset(
            name=self.key,
            repo_id=self.repo_id,
            revision=self.revision,
            repo_type="dataset",
            allow_patterns=(self.files,),
        )


def export_hub(spec: HubDataset, out: Path, *, mirror: str | None = None, cache_dir: str | None = None) -> int:
    """Fetch ``spec``'s parquet files and write its split to ``out`` in the format its loader reads; rows written."""
    import datasets

    snapshot = fetch_hub(spec.asset, mirror=mirror, cache_dir=cache_dir)
    files = sorted(str(p) for p in snapshot.glob(spec.files))
    if not files:
        raise InputError(f"{spec.key}: no file matches {spec.files!r} in {snapshot} ({spec.repo_id}@{spec.revision})")
    base_split = spec.split.split("[", 1)[0]
    # The arrow conversion is only a step on the way to `out`: it goes to a scratch folder beside it.
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        ds = datasets.load_dataset("parquet", data_files={base_split: files}, split=spec.split, cache_dir=scratch)
        if spec.column not in ds.column_names:
            raise InputError(f"{spec.key}: {spec.repo_id} has no column {spec.column!r} (columns: {ds.column_names})")
        rows = list(ds[spec.column])
    if spec.key.startswith("wiki_"):
        # Wikitext-103 raw: one row per line, as the dataset's rows are the file's lines.
        atomic.write_text(out, "".join(r.rstrip("\n") + "\n" for r in rows))
    else:
        write_jsonl_atomic(out, ({spec.column: r} for r in rows))
    check_format(spec.key, out)
    # A HF cache snapshot's folder is its commit: the hash to pin in the config for a byte-exact rerun.
    commit = snapshot.name if snapshot.parent.name == "snapshots" else f"{spec.revision} (mirror {snapshot})"
    log.info("%s: %d rows of %s@%s (%s) written to %s", spec.key, len(rows), spec.repo_id, commit, spec.split, out)
    return len(rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mendrepro.data.inputs", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("place", help="check a hand-placed file and link it into the DAG's output")
    pl.add_argument("--spec", required=True, help="JSON: key, expected, source, sha256, mirror_candidates")
    pl.add_argument("--src", default=None, help="the placed file (none: it was not found)")
    pl.add_argument("--out", required=True)
    hub = sub.add_parser("hub", help="export a split of a Hub dataset at a pinned revision")
    hub.add_argument("--spec", required=True, help="JSON: key, repo_id, revision, files, split, column")
    hub.add_argument("--out", required=True)
    hub.add_argument(
        "--mirror", default=None, help=f"a local mirror directory used instead of the network ({MIRROR_KEY})"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "place":
            place(PlacedFile.from_spec(json.loads(args.spec)), Path(args.src) if args.src else None, Path(args.out))
        else:
            export_hub(HubDataset.from_spec(json.loads(args.spec)), Path(args.out), mirror=args.mirror)
    except (InputError, DownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
