"""The manifest of a run directory: everything needed to rebuild its editor without Snakemake.

``<run>/manifest.json`` sits beside ``editor.pt`` (learned editors, written by ``mendrepro train``) or beside
``eval_k*/`` (FT, FT+KL, the cache: written by ``mendrepro evaluate``). It holds the resolved experiment (editor
kind and options, model spec and edited parameters, task), the base model's directory and its sha256, the data
files, what evaluation tuned (the cache's threshold), and the package and library versions.

Paths are stored as the job saw them, relative to the workflow's directory, together with the run directory's own
path; a reader finds that directory again from where the run directory now lies, so a moved tree still loads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import time
from pathlib import Path

from mendrepro.data.formats import write_json_atomic
from mendrepro.numerics import cpu_numerics

MANIFEST = "manifest.json"
FORMAT = "mendrepro-run/1"
LIBRARIES = ("mendrepro", "torch", "transformers", "tokenizers", "accelerate")


class ManifestError(FileNotFoundError):
    """A run directory without a (readable) manifest."""


# What to do about a missing or unreadable manifest: its job writes it.
REWRITE = (
    "re-run the job to write one: `snakemake --cores all --force <run>/editor.pt` (learned editors) or "
    "`snakemake --cores all --force <run>/eval_k1/metrics.json` (FT, FT+KL, cache)"
)


def directory_sha256(path: Path) -> str:
    """sha256 over a directory's files: each file's relative path and content hash, in sorted order (a fetched
    checkpoint's directory holds its source.json, which pins the revision and the state dict's sha256)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(path).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def write_manifest(
    run_dir: Path,
    experiment: dict,
    model_dir: Path,
    files: dict[str, str],
    checkpoint: Path | None = None,
    tuned: dict | None = None,
) -> Path:
    """Write ``run_dir/manifest.json`` atomically; returns its path."""
    run_dir = Path(run_dir)
    manifest = {
        "format": FORMAT,
        "run_dir": run_dir.as_posix(),
        "experiment": experiment,
        "checkpoint": Path(checkpoint).name if checkpoint else None,
        "base_model": {
            "path": Path(model_dir).as_posix(),
            "arch": experiment["model"]["arch"],
            "sha256": directory_sha256(model_dir),
        },
        "data_files": dict(files),
        "tuned": dict(tuned or {}),
        "versions": versions(),
        # Which floating-point path made the numbers (mendrepro.numerics): runs agree bit for bit only on one path.
        "cpu_numerics": cpu_numerics(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = run_dir / MANIFEST
    write_json_atomic(path, manifest)
    return path


def read_manifest(run_dir: Path) -> dict:
    """The manifest of ``run_dir``; a :class:`ManifestError` saying what to do when it has none."""
    path = Path(run_dir) / MANIFEST
    if not Path(run_dir).is_dir():
        raise ManifestError(f"{run_dir} is not a run directory (results/<profile>/seed<s>/<task>/<model>/<editor>)")
    if not path.is_file():
        run = Path(run_dir)
        raise ManifestError(
            f"{run} has no {MANIFEST}: it was written before run directories described themselves, or its job did "
            f"not finish. Re-run the job to write one: `snakemake --cores all --force {run / 'editor.pt'}` (learned "
            f"editors) or `snakemake --cores all --force {run / 'eval_k1' / 'metrics.json'}` (FT, FT+KL, cache)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 (byte {e.start}); {REWRITE}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); {REWRITE}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: a manifest is a JSON object, got {type(manifest).__name__}; {REWRITE}")
    if manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, this version reads {FORMAT!r}")
    return manifest


def workflow_root(run_dir: Path, manifest: dict) -> Path:
    """The directory the manifest's relative paths start from: ``run_dir`` minus the run directory's recorded
    (relative) path; the recorded path itself when it was absolute."""
    recorded = Path(manifest["run_dir"])
    if recorded.is_absolute():
        return Path("/")
    here = Path(run_dir).resolve()
    if here.parts[-len(recorded.parts) :] != recorded.parts:
        # Renamed on the way: fall back to the current directory, the workflow's when run from there.
        return Path.cwd()
    return Path(*here.parts[: -len(recorded.parts)])
