"""envs/install.py: the Python check, which lock it tries, and the check-fresh report check."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install", ROOT / "envs" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_other_python_gets_one_line():
    assert install.python_error((3, 11, 9), "/usr/bin/python3") is None
    msg = install.python_error((3, 12, 1), "/usr/bin/python3")
    assert "\n" not in msg and "needs Python 3.11" in msg and "3.12.1" in msg and "PYTHON=" in msg


def test_other_python_stops_in_the_first_second(tmp_path):
    """Run the installer under a fake 3.12 by patching sys.version_info: exit 2, nothing created."""
    code = (
        "import sys, runpy; sys.version_info = (3, 12, 1, 'final', 0); "
        f"sys.argv = ['install.py', '--venv', {str(tmp_path / 'v')!r}]; "
        f"runpy.run_path({str(ROOT / 'envs' / 'install.py')!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "needs Python 3.11" in proc.stderr
    assert not (tmp_path / "v").exists()


def _never(*_args, **_kw):
    return False


@pytest.fixture
def no_pip_cpu_torch(monkeypatch):
    monkeypatch.setattr(install, "pip_finds_cpu_torch", _never)


def test_plan_without_cpu_wheel_or_index_is_pypi(no_pip_cpu_torch):
    assert install.plan("auto", None, ["pip"], probe=_never) == [(install.PYPI_LOCK, [])]


def test_plan_prefers_a_local_cpu_wheel_then_falls_back(tmp_path, no_pip_cpu_torch):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    steps = install.plan("auto", str(tmp_path), ["pip"], probe=_never)
    assert steps == [(install.CPU_LOCK, ["--find-links", str(tmp_path)]), (install.PYPI_LOCK, [])]


def test_plan_uses_the_cpu_index_when_it_answers(no_pip_cpu_torch):
    steps = install.plan("auto", None, ["pip"], probe=lambda url: url.startswith(install.CPU_INDEX))
    assert steps == [(install.CPU_LOCK, ["--extra-index-url", install.CPU_INDEX]), (install.PYPI_LOCK, [])]


def test_forced_choices():
    assert install.plan("pypi", "/w", ["pip"]) == [(install.PYPI_LOCK, [])]
    assert install.plan("cpu-index", None, ["pip"]) == [(install.CPU_LOCK, ["--extra-index-url", install.CPU_INDEX])]


def test_locks_pin_torch_as_the_installer_expects():
    cpu = install.lock_hashes((ROOT / install.CPU_LOCK).read_text())
    pypi = install.lock_hashes((ROOT / install.PYPI_LOCK).read_text())
    assert "torch==2.13.0+cpu " in (ROOT / install.CPU_LOCK).read_text() and len(cpu["torch"]) == 1
    assert "torch==2.13.0 " in (ROOT / install.PYPI_LOCK).read_text() and len(pypi["torch"]) > 1
    assert set(cpu) - {"torch"} <= set(pypi)


def test_report_check_catches_unlisted_files():
    hashes = {"numpy": {"a" * 64}}
    item = {
        "metadata": {"name": "NumPy"},
        "download_info": {"url": "u", "archive_info": {"hashes": {"sha256": "a" * 64}}},
    }
    assert install.report_errors({"install": [item]}, hashes) == []
    bad = {**item, "download_info": {"url": "u", "archive_info": {"hashes": {"sha256": "b" * 64}}}}
    assert "not one of the lock's" in install.report_errors({"install": [bad]}, hashes)[0]
    other = {**item, "metadata": {"name": "scipy"}}
    assert install.report_errors({"install": [other]}, hashes) == ["scipy: not in the lock"]
