"""Tests of data/download.py without network: a loopback HTTP server and a HF-cache-shaped directory."""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants as hf_constants

from mendrepro.data.download import (
    MIRROR_KEY,
    DownloadError,
    HubAsset,
    ManualAsset,
    UrlAsset,
    asset_from_dict,
    fetch,
    fetch_hub,
    fetch_manual,
    fetch_url,
    hub_offline,
    main,
)

PAYLOAD = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
CUT = 100_000
CHUNK = 16 * 1024


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with ``Range: bytes=N-`` support; can cut chosen requests after ``server.cut`` bytes."""

    server: _Server

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.log.append({"path": self.path, "range": self.headers.get("Range")})
            index = len(srv.log)
        data = srv.files.get(self.path)
        if index in srv.fail_requests:
            self.send_error(503, "Service Unavailable")
            return
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if index in srv.cut_requests:
            self.wfile.write(body[: srv.cut])
            self.wfile.flush()
            self.close_connection = True
            return  # the server closes the socket: the client sees a short body
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {"/ckpt/model.pt": PAYLOAD, "/data/train.jsonl": b'{"a": 1}\n'}
        self.log: list[dict] = []
        self.lock = threading.Lock()
        self.cut_requests: set[int] = set()  # 1-based request numbers cut after `cut` bytes
        self.fail_requests: set[int] = set()  # 1-based request numbers answered with 503
        self.cut = CUT
        self.ignore_range = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _asset(server: _Server, tmp_path: Path, sha: str = SHA) -> UrlAsset:
    return UrlAsset(name="bart-zsre", url=server.url("/ckpt/model.pt"), sha256=sha, dest=tmp_path / "out" / "model.pt")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---------------------------------------------------------------------------------------------------------------
# URL assets


def test_fetch_verifies_and_places(server, tmp_path):
    asset = _asset(server, tmp_path)
    assert fetch_url(asset, chunk=CHUNK) == asset.dest
    assert asset.dest.read_bytes() == PAYLOAD
    assert _leftovers(asset.dest.parent) == ["model.pt"]
    assert server.log == [{"path": "/ckpt/model.pt", "range": None}]


def test_resume_after_cut_connection(server, tmp_path):
    server.cut_requests = {1}
    asset = _asset(server, tmp_path)
    fetch_url(asset, chunk=CHUNK, backoff=0)
    assert [r["range"] for r in server.log] == [None, f"bytes={CUT}-"]
    assert asset.dest.read_bytes() == PAYLOAD
    assert _leftovers(asset.dest.parent) == ["model.pt"]


def test_part_kept_after_failed_run_and_resumed_by_next_run(server, tmp_path):
    server.cut_requests = {1}
    server.fail_requests = {2, 3}
    asset = _asset(server, tmp_path)
    with pytest.raises(DownloadError, match="HTTP 503") as err:
        fetch_url(asset, chunk=CHUNK, retries=1, backoff=0)  # the cut made progress: it uses up no retry
    assert len(server.log) == 3
    assert f"{CUT} bytes are kept in {asset.part}" in str(err.value)
    assert asset.part.stat().st_size == CUT and not asset.dest.exists()
    fetch_url(asset, chunk=CHUNK, backoff=0)
    assert server.log[-1]["range"] == f"bytes={CUT}-"
    assert asset.dest.read_bytes() == PAYLOAD and not asset.part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    asset = _asset(server, tmp_path)
    asset.dest.parent.mkdir(parents=True)
    asset.part.write_bytes(PAYLOAD[:5000])
    fetch_url(asset, chunk=CHUNK)
    assert [r["range"] for r in server.log] == ["bytes=5000-"]  # answered with 200 and the whole file
    assert asset.dest.read_bytes() == PAYLOAD and not asset.part.exists()


def test_stale_part_from_another_file_is_redownloaded(server, tmp_path):
    asset = _asset(server, tmp_path)
    asset.dest.parent.mkdir(parents=True)
    asset.part.write_bytes(b"x" * 1000)
    fetch_url(asset, chunk=CHUNK)
    assert [r["range"] for r in server.log] == ["bytes=1000-", None]
    assert asset.dest.read_bytes() == PAYLOAD and not asset.part.exists()


def test_wrong_checksum_is_rejected_and_leaves_nothing(server, tmp_path):
    wrong = hashlib.sha256(b"another file").hexdigest()
    asset = _asset(server, tmp_path, sha=wrong)
    with pytest.raises(DownloadError) as err:
        fetch_url(asset, chunk=CHUNK)
    msg = str(err.value)
    assert "checksum mismatch" in msg and f"expected sha256 {wrong}, got {SHA}" in msg
    assert asset.url in msg and str(asset.dest) in msg
    assert _leftovers(asset.dest.parent) == []
    assert len(server.log) == 1


def test_unreachable_fails_fast_with_placement_instructions(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    asset = UrlAsset(name="fever-train", url=f"http://127.0.0.1:{port}/fever-train-kilt.jsonl", sha256=SHA,
                     dest=tmp_path / "data" / "fever-train-kilt.jsonl")  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_url(asset)  # default retries, timeout and backoff
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    for part in ("fever-train", asset.url, str(asset.dest), SHA, "data.mirror", "--mirror", "fever-train-kilt.jsonl"):
        assert part in msg, part
    assert "4 attempt(s)" in msg
    assert _leftovers(asset.dest.parent) == []
    assert err.value.dest == str(asset.dest) and err.value.name == "fever-train"


def test_http_404_is_not_retried(server, tmp_path):
    asset = UrlAsset(name="x", url=server.url("/nope.pt"), sha256=SHA, dest=tmp_path / "nope.pt")
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        fetch_url(asset, backoff=0)
    assert str(asset.dest) in str(err.value)
    assert len(server.log) == 1 and not asset.dest.exists() and not asset.part.exists()


def test_existing_good_file_makes_no_request(server, tmp_path):
    asset = _asset(server, tmp_path)
    asset.dest.parent.mkdir(parents=True)
    asset.dest.write_bytes(PAYLOAD)
    assert fetch_url(asset) == asset.dest
    assert server.log == []


def test_existing_bad_file_is_replaced(server, tmp_path):
    asset = _asset(server, tmp_path)
    asset.dest.parent.mkdir(parents=True)
    asset.dest.write_bytes(b"truncated")
    fetch_url(asset, chunk=CHUNK)
    assert asset.dest.read_bytes() == PAYLOAD and len(server.log) == 1


def test_mirror_is_used_instead_of_network(server, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.pt").write_bytes(PAYLOAD)
    asset = _asset(server, tmp_path)
    assert fetch(asset, mirror=mirror) == asset.dest
    assert asset.dest.read_bytes() == PAYLOAD and _leftovers(asset.dest.parent) == ["model.pt"]
    assert server.log == []


def test_mirror_with_wrong_or_missing_file(server, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    asset = _asset(server, tmp_path)
    with pytest.raises(DownloadError, match="not in the local mirror") as err:
        fetch_url(asset, mirror=mirror)
    assert str(mirror / "model.pt") in str(err.value)
    (mirror / "model.pt").write_bytes(PAYLOAD[:-1])
    with pytest.raises(DownloadError, match="checksum mismatch for the mirror copy"):
        fetch_url(asset, mirror=mirror)
    assert _leftovers(asset.dest.parent) == [] and server.log == []


def test_asset_validation():
    with pytest.raises(ValueError, match="sha256"):
        UrlAsset(name="a", url="http://x/a", sha256="abc", dest=Path("a"))
    with pytest.raises(ValueError, match="pinned"):
        HubAsset(name="m", repo_id="org/m", revision="")
    assert isinstance(asset_from_dict({"repo_id": "org/m", "revision": "main"}), HubAsset)
    with pytest.raises(ValueError, match="dest"):
        asset_from_dict({"name": "a", "url": "http://x/a", "sha256": SHA})


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


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_url_and_hub_and_error(server, hf_offline, tmp_path, capsys):
    out = tmp_path / "res" / "model.pt"
    spec = {"name": "bart-zsre", "url": server.url("/ckpt/model.pt"), "sha256": SHA}
    assert main(["--asset", json.dumps(spec), "--out", str(out), "--no-progress"]) == 0
    assert out.read_bytes() == PAYLOAD

    snapshot = _hf_cache(tmp_path / "hf")
    hub = {"name": "tiny", "repo_id": "org/tiny", "revision": "main"}
    manifest = tmp_path / "res" / "tiny.json"
    assert main(["--asset", json.dumps(hub), "--out", str(manifest), "--cache-dir", str(tmp_path / "hf")]) == 0
    assert json.loads(manifest.read_text())["path"] == str(snapshot.resolve())

    bad = dict(spec, url=server.url("/missing.pt"))
    assert main(["--asset", json.dumps(bad), "--out", str(tmp_path / "res" / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and str(tmp_path / "res" / "x.pt") in err
    assert main(["--asset", "[1]", "--out", str(tmp_path / "y")]) == 2


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
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_manual(asset)


def test_manual_asset_unpinned_is_accepted_and_its_hash_logged(tmp_path, caplog):
    asset = _manual(tmp_path, sha=None)
    asset.dest.parent.mkdir(parents=True)
    asset.dest.write_bytes(PAYLOAD)
    with caplog.at_level("WARNING"):
        fetch_manual(asset)
    assert SHA in caplog.text


def test_manual_asset_from_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "dev.jsonl").write_bytes(PAYLOAD)
    asset = _manual(tmp_path)
    assert fetch_manual(asset, mirror=mirror).read_bytes() == PAYLOAD
    assert _leftovers(asset.dest.parent) == ["dev.jsonl"]
    (mirror / "dev.jsonl").write_bytes(b"tampered")
    asset.dest.unlink()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_manual(asset, mirror=mirror)
    assert not asset.dest.exists() and _leftovers(asset.dest.parent) == []


def test_manual_asset_from_config_entry(tmp_path):
    asset = asset_from_dict({"kind": "manual", "source": "somewhere", "sha256": None}, dest=tmp_path / "f.json")
    assert isinstance(asset, ManualAsset) and asset.dest == tmp_path / "f.json" and asset.sha256 is None
