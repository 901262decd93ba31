"""Atomic outputs: every file and folder the pipeline writes appears whole under its final name or not at all.

A file is written to a temporary file in the same folder, synced, given an ordinary file's mode (mkstemp's are
private) and renamed over the target; a folder is filled under a temporary name and renamed likewise. A job killed
half-way leaves only a dot-named temporary behind, never a truncated output that Snakemake could take as done.
Imports neither torch nor pandas, so the report rules' light environment can use it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically, newlines as given."""
    return write_bytes(path, text.encode("utf-8"))


def torch_save(obj, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically.

    Serialised in memory first: torch names the archive inside the file after the file it writes to, so saving
    to a randomly named temporary file would make the bytes depend on that name.
    """
    import torch  # here, not at the top: the report environment has no torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getvalue())


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing an existing ``dst`` (a rename cannot overwrite a full folder)."""
    if dst.exists():
        old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".old"))
        os.replace(dst, old / dst.name)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


@contextmanager
def staging_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``out`` to fill; it becomes ``out`` when the block ends without an error and is
    removed when it raises."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's folder is private: give it an ordinary folder's mode
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
