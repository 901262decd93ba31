"""The one atomic-write module: whole files and folders or nothing, ordinary modes, bytes independent of temp names."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from mendrepro import atomic


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_text_is_replaced_whole_with_an_ordinary_mode(tmp_path):
    target = tmp_path / "deep" / "a.txt"
    atomic.write_text(target, "hello\n")
    atomic.write_text(target, "replaced\r\n")
    assert target.read_bytes() == b"replaced\r\n"  # newlines as given
    assert _mode(target) == 0o666 & ~_umask()  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    atomic.write_text(target, "old\n")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mendrepro.atomic.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_torch_save_bytes_do_not_depend_on_the_file_name(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    a, b = atomic.torch_save(state, tmp_path / "editor.pt"), atomic.torch_save(state, tmp_path / "other.pt")
    assert a.read_bytes() == b.read_bytes()
    assert torch.equal(torch.load(a)["w"], state["w"])
    assert _mode(a) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["editor.pt", "other.pt"]


def test_staging_dir_replaces_the_folder_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "model"
    with atomic.staging_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert _mode(out) == 0o777 & ~_umask()
    with pytest.raises(RuntimeError, match="killed"), atomic.staging_dir(out) as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    with atomic.staging_dir(out) as tmp:
        (tmp / "new.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["new.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
