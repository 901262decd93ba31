"""Build the project's venv from a committed, hash-pinned lock (`make install`; standard library only, since it
runs before the venv exists, under whatever Python the user has).

Two locks pin the same versions of every package and differ only in torch:
- envs/requirements.lock: torch 2.13.0+cpu, the CPU build. PyPI does not serve it; it comes from a local wheel
  folder (--wheels, or a find-links already in the user's pip configuration) or from the PyTorch CPU index.
- envs/requirements-pypi.lock: torch 2.13.0 as PyPI serves it (CUDA build with its nvidia-* wheels on Linux,
  the CPU build on macOS and Windows), for any platform (uv's universal resolution).

`--torch auto` (the default) takes the CPU build where it can be had, in this order: the wheel folder, pip's own
configuration, the PyTorch CPU index; otherwise PyPI's torch. Either way pip installs with --require-hashes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

SUPPORTED = (3, 11)
ROOT = Path(__file__).resolve().parents[1]
CPU_LOCK = "envs/requirements.lock"
PYPI_LOCK = "envs/requirements-pypi.lock"
CPU_TORCH = "torch==2.13.0+cpu"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def python_error(version: tuple[int, ...], executable: str) -> str | None:
    """One line when `executable` is not the supported Python, else None."""
    if tuple(version[:2]) == SUPPORTED:
        return None
    want = ".".join(map(str, SUPPORTED))
    found = ".".join(map(str, version[:3]))
    return (
        f"error: mend-repro needs Python {want}, but {executable} is Python {found}; install Python {want} "
        f"(python.org, your package manager, pyenv or `uv python install {want}`) and run "
        f"`make PYTHON=/path/to/python{want} ...`"
    )


def pip_finds_cpu_torch(pip: list[str], wheels: str | None) -> bool:
    """Whether pip, with its own configuration (plus `wheels` as find-links), resolves the CPU torch wheel."""
    cmd = [*pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", CPU_TORCH]
    if wheels:
        cmd += ["--find-links", wheels]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether `url` answers at all (a HEAD request), so an offline machine falls through in seconds."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except OSError:
        return False


def has_cpu_wheel(wheels: str | None) -> bool:
    return bool(wheels) and any(Path(wheels).glob("torch-2.13.0+cpu-*.whl"))


def plan(choice: str, wheels: str | None, pip: list[str], probe=reachable) -> list[tuple[str, list[str]]]:
    """The (lock, extra pip arguments) to try in order; the first that installs wins."""
    cpu_local = (CPU_LOCK, ["--find-links", wheels] if wheels else [])
    cpu_index = (CPU_LOCK, ["--extra-index-url", CPU_INDEX])
    pypi = (PYPI_LOCK, [])
    if choice == "cpu-wheels":
        return [cpu_local]
    if choice == "cpu-index":
        return [cpu_index]
    if choice == "pypi":
        return [pypi]
    if has_cpu_wheel(wheels) or pip_finds_cpu_torch(pip, wheels):
        return [cpu_local, pypi]
    if probe(CPU_INDEX + "/torch/"):
        return [cpu_index, pypi]
    return [pypi]


def lock_hashes(lock_text: str) -> dict[str, set[str]]:
    """Project name (PEP 503) -> the sha256 digests a hash-pinned lock allows for it."""
    out: dict[str, set[str]] = {}
    name = None
    for line in lock_text.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            out.setdefault(name, set())
        h = re.search(r"--hash=sha256:([0-9a-f]{64})", line)
        if h and name:
            out[name].add(h.group(1))
    return out


def report_errors(report: dict, hashes: dict[str, set[str]]) -> list[str]:
    """Every file in a `pip install --report` must be a pin of the lock with one of the lock's sha256 digests."""
    errors = []
    for item in report.get("install", []):
        name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
        info = item.get("download_info", {})
        digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        if name not in hashes:
            errors.append(f"{name}: not in the lock")
        elif digest not in hashes[name]:
            errors.append(f"{name}: {info.get('url')} has sha256 {digest}, not one of the lock's")
    return errors


def check_fresh(venv: Path) -> int:
    """The PyPI-only path of a user's machine: resolve the PyPI lock with pip's configuration switched off."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--isolated", "--disable-pip-version-check"]
    report = venv / "report.json"
    cmd = [*pip, "install", "--dry-run", "--ignore-installed", "--require-hashes", "--quiet"]
    cmd += ["-r", str(ROOT / PYPI_LOCK), "--report", str(report)]
    print("check-fresh: " + " ".join(cmd[1:]), flush=True)
    if subprocess.run(cmd).returncode != 0:
        print(f"error: {PYPI_LOCK} does not resolve from PyPI alone (see above)", file=sys.stderr)
        return 1
    data = json.loads(report.read_text())
    errors = report_errors(data, lock_hashes((ROOT / PYPI_LOCK).read_text()))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    chosen = plan("auto", None, pip, probe=lambda url: False)
    if [lock for lock, _ in chosen] != [PYPI_LOCK]:
        errors.append(f"without a wheel folder or the CPU index, install.py would try {chosen}")
        print(f"error: {errors[-1]}", file=sys.stderr)
    if errors:
        return 1
    items = data["install"]
    torch = next(i for i in items if i["metadata"]["name"] == "torch")
    print(
        f"check-fresh: {len(items)} packages resolve from PyPI alone, each file's sha256 in {PYPI_LOCK}; "
        f"torch {torch['metadata']['version']} from {torch['download_info']['url'].split('/packages/')[0]}; "
        f"without a wheel folder or the CPU index, `make install` installs {PYPI_LOCK}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=".venv", help="the venv to create or update (default .venv)")
    ap.add_argument("--wheels", default=os.environ.get("WHEELS") or None, help="a folder holding the CPU torch wheel")
    ap.add_argument(
        "--torch",
        choices=["auto", "cpu-wheels", "cpu-index", "pypi"],
        default=os.environ.get("TORCH", "auto"),
        help="where torch comes from: auto (default: CPU build if available, else PyPI), cpu-wheels (local wheel "
        "folder or pip's configured find-links), cpu-index (PyTorch CPU index), pypi (PyPI's torch)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the locks it would try, install nothing")
    ap.add_argument(
        "--check-fresh", action="store_true", help="resolve the PyPI lock with pip --isolated (make check-fresh)"
    )
    args = ap.parse_args(argv)

    err = python_error(sys.version_info, sys.executable)
    if err:
        print(err, file=sys.stderr)
        return 2
    if args.check_fresh:
        return check_fresh(Path(args.venv))
    venv = Path(args.venv)
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip"]
    attempts = plan(args.torch, args.wheels, pip)
    if args.dry_run:
        for lock, extra in attempts:
            print(" ".join([lock, *extra]))
        return 0
    for n, (lock, extra) in enumerate(attempts):
        print(f"install: {lock} {' '.join(extra)}".rstrip(), flush=True)
        cmd = [*pip, "install", "--require-hashes", "-r", str(ROOT / lock), *extra]
        if subprocess.run(cmd).returncode == 0:
            break
        if n + 1 == len(attempts):
            print(f"error: pip could not install {lock} (see above)", file=sys.stderr)
            return 1
        print(f"install: {lock} failed; trying {attempts[n + 1][0]}", file=sys.stderr, flush=True)
    # The project itself, editable, without dependencies (the lock has them all) and without build isolation
    # (setuptools is in the lock, so this step needs no network).
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    with tempfile.NamedTemporaryFile("w", dir=venv, delete=False) as f:
        f.write(f"{lock}\n")
    os.replace(f.name, venv / ".installed")
    print(f"install: {venv} ready ({lock})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
