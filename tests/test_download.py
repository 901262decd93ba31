"""Tests of data/download.py without network: HF-cache-shaped directories, a closed loopback port, and hand-placed
files (the state dicts)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import time
from pathlib import Path

import pytest
from huggingface_hub import constants as hf_constants

from mendrepro.data.download import (
    MIRROR_KEY,
    DownloadError,
    HubAsset,
    ManualAsset,
    asset_from_dict,
    fetch,
    fetch_hub,
    fetch_manual,
    hub_offline,
)

PAYLOAD = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_asset_validation():
    with pytest.raises(ValueError, match="sha256"):
        ManualAsset(name="a", dest=Path("a"), source="somewhere", sha256="abc")
    with pytest.raises(ValueError, match="pinned"):
        HubAsset(name="m", repo_id="org/m", revision="")
    assert isinstance(asset_from_dict({"repo_id": "org/m", "revision": "main"}), HubAsset)
    with pytest.raises(ValueError, match="unknown kind 'url'"):
        asset_from_dict({"kind": "url", "name": "a", "sha256": SHA})


# ---------------------------------------------------------------------------------------------------------------
# Hub assets

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hf_cache(root: Path, repo_id: str = "org/tiny", repo_type: str = "model") -> Path:
    """A directory laid out like a HF hub cache holding one snapshot of ``repo_id``; return the snapshot."""
    repo = root / "--".join([f"{repo_type}s", *repo_id.split("/")])
    config = b'{"model_type": "bert"}\n'
    blob = hashlib.sha256(config).hexdigest()
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / blob).write_bytes(config)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(Path("..", "..", "blobs", blob))
    return snapshot


@pytest.fixture
def hf_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read from the environment at import time


@pytest.mark.parametrize("revision", ["main", COMMIT])
def test_hub_snapshot_from_local_cache_offline(hf_offline, tmp_path, revision):
    snapshot = _hf_cache(tmp_path / "hf")
    path = fetch_hub(HubAsset(name="tiny", repo_id="org/tiny", revision=revision), cache_dir=tmp_path / "hf")
    assert path == snapshot
    assert json.loads((path / "config.json").read_text()) == {"model_type": "bert"}


def test_hub_missing_offline_gives_clear_error(hf_offline, tmp_path):
    _hf_cache(tmp_path / "hf")
    asset = HubAsset(name="wiki", repo_id="org/missing", revision="main", repo_type="dataset")
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch(asset, cache_dir=tmp_path / "hf")
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    for part in (
        "org/missing",
        "revision main",
        "HF_HUB_OFFLINE=1",
        str(tmp_path / "hf" / "datasets--org--missing"),
        "hf download org/missing --repo-type dataset --revision main",
        "data.mirror",
    ):
        assert part in msg, part


def test_hub_unreachable_online_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="the download failed and it is not in the local HF cache") as err:
        fetch_hub(HubAsset(name="m", repo_id="org/m", revision="main"), cache_dir=tmp_path / "hf")
    assert time.monotonic() - t0 < 5
    assert str(tmp_path / "hf" / "models--org--m") in str(err.value)
    assert "ConnectError" in str(err.value)


def test_hub_offline_read_from_env_at_call_time(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert not hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline()


def test_hub_mirror_plain_snapshot_and_cache_layout(hf_offline, tmp_path):
    mirror = tmp_path / "mirror"
    plain = mirror / "models" / "org" / "plain"
    plain.mkdir(parents=True)
    (plain / "config.json").write_text("{}")
    assert fetch_hub(HubAsset(name="p", repo_id="org/plain", revision="main"), mirror=mirror) == plain
    snapshot = _hf_cache(mirror)  # a copied HF cache as the mirror
    assert fetch_hub(HubAsset(name="t", repo_id="org/tiny", revision=COMMIT), mirror=mirror) == snapshot
    with pytest.raises(DownloadError, match="not in the local mirror") as err:
        fetch_hub(HubAsset(name="m", repo_id="org/other", revision="main"), mirror=mirror)
    assert str(mirror / "models" / "org" / "other") in str(err.value)


def test_hub_mirror_of_another_commit_is_refused(tmp_path):
    plain = tmp_path / "mirror" / "models" / "org" / "plain"
    meta = plain / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (plain / "config.json").write_text("{}")
    (meta / "config.json.metadata").write_text(f"{'f' * 40}\netag\n0.0\n")
    with pytest.raises(DownloadError, match=f"of commit {'f' * 40}, not the pinned {COMMIT}"):
        fetch_hub(HubAsset(name="p", repo_id="org/plain", revision=COMMIT), mirror=tmp_path / "mirror")


# ----------------------------------------------------------------------------------------------------------------
# files placed by hand (no stable URL)


def _manual(tmp_path: Path, sha: str | None = SHA) -> ManualAsset:
    return ManualAsset(
        name="zsre_dev", dest=tmp_path / "data" / "dev.jsonl", source="the release's data folder", sha256=sha
    )


def test_manual_asset_missing_says_where_it_goes(tmp_path):
    asset = _manual(tmp_path)
    with pytest.raises(DownloadError) as e:
        fetch_manual(asset)
    msg = str(e.value)
    assert "not on disk" in msg and str(asset.dest) in msg and "the release's data folder" in msg
    assert MIRROR_KEY in msg and SHA in msg


def test_manual_asset_present_is_checked(tmp_path):
    asset = _manual(tmp_path)
    asset.dest.parent.mkdir(parents=True)
    asset.dest.write_bytes(PAYLOAD)
    assert fetch_manual(asset) == asset.dest
    asset.dest.write_bytes(PAYLOAD + b"x")
    with pytest.raises(DownloadError, match=f"but the config pins {SHA}"):
        fetch_manual(asset)


def test_manual_asset_unpinned_is_accepted_and_its_hash_logged(tmp_path, caplog):
    asset = _manual(tmp_path, sha=None)
    asset.dest.parent.mkdir(parents=True)
    asset.dest.write_bytes(PAYLOAD)
    with caplog.at_level("WARNING"):
        fetch_manual(asset)
    assert SHA in caplog.text


def test_manual_asset_from_mirror_is_read_in_place(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "dev.jsonl").write_bytes(PAYLOAD)
    asset = _manual(tmp_path)
    assert fetch_manual(asset, mirror=mirror) == mirror / "dev.jsonl"
    assert not asset.dest.parent.exists()  # nothing copied: the mirror's file is the one read
    (mirror / "dev.jsonl").write_bytes(b"tampered")
    with pytest.raises(
        DownloadError, match=f"has sha256 {hashlib.sha256(b'tampered').hexdigest()}, but the config pins {SHA}"
    ):
        fetch_manual(asset, mirror=mirror)
    assert (mirror / "dev.jsonl").read_bytes() == b"tampered"


def test_manual_asset_from_config_entry(tmp_path):
    asset = asset_from_dict({"kind": "manual", "source": "somewhere", "sha256": None}, dest=tmp_path / "f.json")
    assert isinstance(asset, ManualAsset) and asset.dest == tmp_path / "f.json" and asset.sha256 is None
