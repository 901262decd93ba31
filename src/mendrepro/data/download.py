"""Fetch the paper profile's inputs: files by URL (checksummed) and Hugging Face Hub snapshots (revision-pinned).

Two kinds of asset:

* :class:`UrlAsset`: one file (De Cao's BART-zsRE / BERT-FEVER state dicts, the zsRE / FEVER / Wikitext edit
  files) fetched from ``url`` to ``dest``. The download streams into ``<dest>.part`` beside ``dest``, resumes it
  with an HTTP ``Range`` request after a cut connection (and starts over cleanly when the server ignores the
  range), hashes it with sha256 on the way, and only then moves it onto ``dest`` with ``os.replace``. A wrong
  checksum deletes the partial file. A ``.part`` left by a failed *connection* is kept, so the next run resumes.
  A ``dest`` that already has the right sha256 is used as is, without touching the network.
* :class:`HubAsset`: a model or dataset repository on the Hub, fetched with
  ``huggingface_hub.snapshot_download`` at a pinned revision into the HF cache. ``HF_HUB_OFFLINE=1`` restricts it
  to the local cache.

Local mirror (config key ``data.mirror``, CLI ``--mirror DIR``): a directory used *instead of* the network, for
machines behind a firewall. Layout::

    MIRROR/<file name>                      a URL asset, by the file name of its dest (or of its URL, or its name)
    MIRROR/models/<org>/<name>/...          a Hub model as a plain snapshot directory, e.g. written by
    MIRROR/datasets/<org>/<name>/...          ``hf download REPO --revision REV --local-dir MIRROR/models/REPO``
    MIRROR/models--<org>--<name>/...        or a copied HF cache (``hf download ... --cache-dir MIRROR``)

Files from the mirror are checksummed like downloads. Every failure raises :class:`DownloadError`, whose message
names what is missing, where it is expected on disk and how to place it there by hand.

Command line (what the workflow's download rule runs)::

    python -m mendrepro.data.download --asset JSON --out PATH [--mirror DIR] [--cache-dir DIR]

``JSON`` is ``{"name", "url", "sha256"}`` (the file is written to ``--out``) or
``{"name", "repo_id", "revision", "repo_type", "allow_patterns"}`` (the snapshot is fetched into the HF cache and
``--out`` receives a small JSON manifest with its path).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from mendrepro.data.formats import write_json_atomic

log = logging.getLogger(__name__)

MIRROR_KEY = "data.mirror"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_HASH_BLOCK = 1 << 20


def _sha256_spec(name: str, value: object) -> str:
    """A configured sha256 as 64 lowercase hex digits, or a ValueError naming the asset."""
    sha = str(value).strip().lower()
    if not _SHA256_RE.fullmatch(sha):
        raise ValueError(f"asset {name!r}: sha256 must be 64 hexadecimal digits, got {value!r}")
    return sha


class DownloadError(RuntimeError):
    """An asset could not be fetched; the message says what is missing, where it belongs and how to place it."""

    def __init__(self, name: str, dest: str | os.PathLike[str], message: str) -> None:
        self.name = name
        self.dest = str(dest)
        super().__init__(message)


@dataclass(frozen=True)
class UrlAsset:
    """One file fetched from ``url`` to ``dest`` and checked against ``sha256`` (64 hex digits)."""

    name: str
    url: str
    sha256: str
    dest: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "dest", Path(self.dest))
        object.__setattr__(self, "sha256", _sha256_spec(self.name, self.sha256))
        if not self.url:
            raise ValueError(f"asset {self.name!r}: empty url")

    @property
    def part(self) -> Path:
        """The partial download beside ``dest``."""
        return self.dest.with_name(self.dest.name + ".part")

    def mirror_names(self) -> list[str]:
        """File names looked up in a mirror directory, in order: dest's, the URL's, the asset's name."""
        url_name = unquote(Path(urlsplit(self.url).path).name)
        names: list[str] = []
        for n in (self.dest.name, url_name, self.name):
            if n and n not in names and "/" not in n and n not in (".", ".."):
                names.append(n)
        return names


@dataclass(frozen=True)
class HubAsset:
    """A Hub repository at a pinned ``revision`` (a commit hash is best; a branch or tag also works)."""

    name: str
    repo_id: str
    revision: str
    repo_type: Literal["model", "dataset"] = "model"
    allow_patterns: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.repo_type not in ("model", "dataset"):
            raise ValueError(f"asset {self.name!r}: repo_type must be 'model' or 'dataset', got {self.repo_type!r}")
        if not self.revision:
            raise ValueError(f"asset {self.name!r}: the revision of {self.repo_id} must be pinned")
        if isinstance(self.allow_patterns, str):
            object.__setattr__(self, "allow_patterns", (self.allow_patterns,))
        elif self.allow_patterns is not None:
            object.__setattr__(self, "allow_patterns", tuple(self.allow_patterns))

    @property
    def cache_folder(self) -> str:
        """The repository's folder name in a HF cache, e.g. ``models--facebook--bart-base``."""
        return "--".join([f"{self.repo_type}s", *self.repo_id.split("/")])

    @property
    def mirror_subdir(self) -> str:
        """The plain snapshot directory in a mirror, relative to it, e.g. ``models/facebook/bart-base``."""
        return f"{self.repo_type}s/{self.repo_id}"


@dataclass(frozen=True)
class ManualAsset:
    """A file with no stable download URL (e.g. in a Google Drive folder), placed at ``dest`` by hand once.

    Fetching it checks that it is there (or copies it from the mirror) and verifies ``sha256`` when one is pinned;
    an unpinned file is accepted and its sha256 logged, so it can be pinned in the config.
    """

    name: str
    dest: Path
    source: str
    sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dest", Path(self.dest))
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", _sha256_spec(self.name, self.sha256))
        if not self.source:
            raise ValueError(f"asset {self.name!r}: say where the file comes from (source)")


Asset = UrlAsset | HubAsset | ManualAsset


# ----------------------------------------------------------------------------------------------------------------
# messages


def _url_message(asset: UrlAsset, reason: str, mirror: Path | None, note: str | None = None) -> str:
    names = asset.mirror_names()
    where = str(mirror) if mirror is not None else "MIRROR"
    lines = [
        f"Cannot get {asset.name}: {reason}",
        f"  URL:      {asset.url}",
        f"  expected: {asset.dest}",
        f"  sha256:   {asset.sha256}",
    ]
    if note:
        lines.append(f"  note:     {note}")
    lines += [
        "To place it by hand (e.g. on a machine behind a firewall), either:",
        f"  - download {asset.url} elsewhere and copy it to {asset.dest}",
        f"    (`sha256sum {asset.dest}` must print {asset.sha256}); or",
        f"  - put it in a local mirror directory as {where}/{names[0]} and set the config key {MIRROR_KEY}",
        "    (or --mirror DIR of `python -m mendrepro.data.download`) to that directory, to use it instead of the"
        " network.",
    ]
    return "\n".join(lines)


def _manual_message(asset: ManualAsset, reason: str, mirror: Path | None) -> str:
    where = str(mirror) if mirror is not None else "MIRROR"
    lines = [
        f"Cannot get {asset.name}: {reason}",
        f"  expected: {asset.dest}",
        f"  source:   {asset.source}",
        f"  sha256:   {asset.sha256 or '(not pinned in the config)'}",
        "It has no stable download URL, so it is placed by hand once, either:",
        f"  - get it from the source above and copy it to {asset.dest}; or",
        f"  - put it in a local mirror directory as {where}/{asset.dest.name} and set the config key {MIRROR_KEY}"
        " to that directory.",
    ]
    return "\n".join(lines)


def _hub_message(asset: HubAsset, reason: str, cache_dir: Path, mirror: Path | None) -> str:
    where = str(mirror) if mirror is not None else "MIRROR"
    kind = "" if asset.repo_type == "model" else " --repo-type dataset"
    include = "".join(f" --include '{p}'" for p in asset.allow_patterns or ())
    cmd = f"hf download {asset.repo_id}{kind} --revision {asset.revision}{include}"
    lines = [
        f"Cannot get {asset.name} (Hugging Face {asset.repo_type} {asset.repo_id}, revision {asset.revision}): "
        f"{reason}",
        f"  expected: {cache_dir / asset.cache_folder}/snapshots/<commit of {asset.revision}>/ (the HF cache)",
        "To place it by hand (e.g. on a machine behind a firewall), on a machine with network access either:",
        f"  - run `{cmd} --cache-dir DIR` and copy DIR/{asset.cache_folder} to {cache_dir / asset.cache_folder}"
        " (then HF_HUB_OFFLINE=1 works); or",
        f"  - run `{cmd} --local-dir {where}/{asset.mirror_subdir}` (or copy a whole HF cache to {where}), and set"
        f" the config key {MIRROR_KEY} (or --mirror DIR) to {where}.",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# URL assets


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file as 64 lowercase hex digits, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


class _PartHash:
    """A running sha256 of ``part``'s bytes, rebuilt from the file when it and the file disagree."""

    def __init__(self, part: Path) -> None:
        self.part = part
        self.h = hashlib.sha256()
        self.n = 0

    def sync(self) -> int:
        """Make the hash cover exactly the bytes on disk; return their number."""
        size = self.part.stat().st_size if self.part.exists() else 0
        if size != self.n:
            self.reset()
            if size:
                with open(self.part, "rb") as f:
                    while block := f.read(_HASH_BLOCK):
                        self.h.update(block)
                self.n = size
        return size

    def reset(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0

    def update(self, block: bytes) -> None:
        self.h.update(block)
        self.n += len(block)


class _Retryable(Exception):
    """A failure worth another attempt (cut connection, timeout, 5xx, short body)."""


class _Fatal(Exception):
    """A failure that another attempt will not fix (e.g. HTTP 404)."""


def _http_reason(status: int, reason: str | None) -> str:
    return f"HTTP {status} {reason or ''}".rstrip()


def _attempt(session: Any, asset: UrlAsset, state: _PartHash, timeout: Any, chunk: int, progress: bool | None) -> bool:
    """One GET into ``asset.part``, resuming it if it has bytes; return whether it resumed from a non-empty part."""
    import requests
    import urllib3
    from tqdm.auto import tqdm

    offset = state.sync()
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(asset.url, headers=headers, stream=True, timeout=timeout) as r:
            if r.status_code == 416 and offset:
                # Range not satisfiable: the part is probably complete already; the checksum decides.
                return True
            if r.status_code >= 400:
                msg = _http_reason(r.status_code, r.reason)
                if r.status_code in (408, 425, 429) or r.status_code >= 500:
                    raise _Retryable(msg)
                raise _Fatal(msg)
            resumed = False
            if offset and r.status_code == 206:
                m = _CONTENT_RANGE_RE.match(r.headers.get("Content-Range", ""))
                if m is None or int(m.group(1)) != offset:
                    # An answer for another range than asked: drop the part and start again.
                    state.part.unlink(missing_ok=True)
                    state.reset()
                    raise _Retryable(f"server sent range {r.headers.get('Content-Range')!r} for bytes={offset}-")
                resumed = True
            elif offset:
                log.info("%s: the server ignored the range request (HTTP %d); starting over", asset.name, r.status_code)
            if not resumed:
                offset = 0
                state.reset()
            length = r.headers.get("Content-Length")
            expected = int(length) if length is not None and length.isdigit() else None
            total = offset + expected if expected is not None else None
            received = 0
            with (
                open(state.part, "ab" if resumed else "wb") as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=asset.name,
                    disable=None if progress is None else not progress,
                    leave=False,
                ) as bar,
            ):
                try:
                    for block in r.raw.stream(chunk, decode_content=False):
                        f.write(block)
                        state.update(block)
                        received += len(block)
                        bar.update(len(block))
                finally:
                    f.flush()
                    os.fsync(f.fileno())
            if expected is not None and received != expected:
                raise _Retryable(f"connection closed after {received} of {expected} bytes")
            return resumed
    except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
        raise _Retryable(f"{type(e).__name__}: {e}") from e


def _place(part: Path, dest: Path) -> Path:
    os.chmod(part, 0o644)
    os.replace(part, dest)
    return dest


def _from_mirror(asset: UrlAsset, mirror: Path, note: str | None) -> Path:
    if not mirror.is_dir():
        raise DownloadError(
            asset.name, asset.dest, _url_message(asset, f"the mirror {mirror} is not a directory", mirror)
        )
    candidates = [mirror / n for n in asset.mirror_names()]
    source = next((c for c in candidates if c.is_file()), None)
    if source is None:
        looked = ", ".join(str(c) for c in candidates)
        reason = f"not in the local mirror (looked for {looked}); the mirror replaces the network"
        raise DownloadError(asset.name, asset.dest, _url_message(asset, reason, mirror, note))
    part = asset.part
    h = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(part, "wb") as out:
            while block := src.read(_HASH_BLOCK):
                out.write(block)
                h.update(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = h.hexdigest()
    if got != asset.sha256:
        part.unlink()
        reason = f"checksum mismatch for the mirror copy {source}: expected sha256 {asset.sha256}, got {got}"
        raise DownloadError(asset.name, asset.dest, _url_message(asset, reason, mirror, note))
    log.info("%s: copied from the mirror %s to %s", asset.name, source, asset.dest)
    return _place(part, asset.dest)


def fetch_url(
    asset: UrlAsset,
    *,
    mirror: str | os.PathLike[str] | None = None,
    retries: int = 3,
    timeout: tuple[float, float] = (5.0, 60.0),
    chunk: int = 1 << 20,
    backoff: float = 0.25,
    progress: bool | None = None,
) -> Path:
    """Fetch ``asset`` to ``asset.dest`` (or copy it from ``mirror``), verify its sha256, and return ``dest``.

    ``timeout`` is (connect, read) in seconds; a connection error is retried ``retries`` times with backoff
    ``backoff * 2**i`` s (an attempt that adds bytes to the part does not use one up), so an unreachable host fails
    in about ``(retries + 1) * connect`` seconds at worst and in about 2 s when the connection is refused or the
    name does not resolve. ``progress``: a tqdm bar on stderr (None: only when stderr is a terminal).
    """
    dest = asset.dest
    note = None
    if dest.is_file():
        got = sha256_file(dest)
        if got == asset.sha256:
            log.info("%s: %s is present and its sha256 matches", asset.name, dest)
            return dest
        note = f"the file already at {dest} has sha256 {got}, not the expected one"
        log.warning("%s: %s; fetching it again", asset.name, note)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        return _from_mirror(asset, Path(mirror), note)

    import requests

    state = _PartHash(asset.part)
    failures = 0  # consecutive failed attempts that added nothing to the part
    attempts = 0
    restarted = False
    with requests.Session() as session:
        while True:
            attempts += 1
            before = state.sync()
            try:
                resumed = _attempt(session, asset, state, timeout, chunk, progress)
            except _Fatal as e:
                raise DownloadError(asset.name, dest, _url_message(asset, f"{e} from {asset.url}", None, note)) from e
            except _Retryable as e:
                after = state.sync()
                failures = 0 if after > before else failures + 1
                if failures > retries or attempts > 20 * (retries + 1):
                    reason = f"the download failed after {attempts} attempt(s) (last error: {e})"
                    if after:
                        reason += f"; {after} bytes are kept in {asset.part} and a new run resumes from there"
                    raise DownloadError(asset.name, dest, _url_message(asset, reason, None, note)) from e
                delay = backoff * 2 ** max(failures - 1, 0)
                log.warning("%s: %s; retrying in %.2f s", asset.name, e, delay)
                time.sleep(delay)
                continue
            state.sync()
            got = state.h.hexdigest()
            if got == asset.sha256:
                log.info("%s: downloaded and verified %s", asset.name, dest)
                return _place(asset.part, dest)
            asset.part.unlink(missing_ok=True)
            state.reset()
            if resumed and not restarted:
                # The kept part may come from another version of the file: one clean download decides.
                restarted = True
                log.warning("%s: checksum mismatch after resuming; downloading it again from the start", asset.name)
                continue
            reason = f"checksum mismatch for {asset.url}: expected sha256 {asset.sha256}, got {got}"
            raise DownloadError(asset.name, dest, _url_message(asset, reason, None, note))


# ----------------------------------------------------------------------------------------------------------------
# Hub assets


def hub_offline() -> bool:
    """Whether Hub access is restricted to the local cache (``HF_HUB_OFFLINE`` now, or when the hub was imported)."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "ON", "YES", "TRUE")


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import EntryNotFoundError

    errors: list[type[BaseException]] = [OSError, EntryNotFoundError]
    try:
        from httpx2 import HTTPError as HttpxError  # the HTTP client of huggingface_hub 2.x
    except ImportError:  # pragma: no cover - other huggingface_hub versions
        pass
    else:
        errors.append(HttpxError)
    return tuple(errors)


def _brief(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(e).__name__}: {text}"


def _check_nonempty(asset: HubAsset, path: Path, cache_dir: Path, mirror: Path | None) -> Path:
    if not any(p.is_file() for p in path.rglob("*") if ".cache" not in p.relative_to(path).parts):
        reason = f"the snapshot directory {path} holds no files"
        raise DownloadError(asset.name, path, _hub_message(asset, reason, cache_dir, mirror))
    return path


def _hub_from_mirror(asset: HubAsset, mirror: Path, cache_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    plain = mirror / asset.mirror_subdir
    if plain.is_dir():
        if _COMMIT_RE.fullmatch(asset.revision):
            # `hf download --local-dir` records each file's commit; refuse a snapshot of another commit.
            meta_dir = plain / ".cache" / "huggingface" / "download"
            for meta in sorted(meta_dir.rglob("*.metadata")) if meta_dir.is_dir() else []:
                commit = meta.read_text(encoding="utf-8").split("\n", 1)[0].strip()
                if commit and commit != asset.revision:
                    reason = f"the mirror snapshot {plain} is of commit {commit}, not the pinned {asset.revision}"
                    raise DownloadError(asset.name, plain, _hub_message(asset, reason, cache_dir, mirror))
        log.info("%s: using the mirror snapshot %s", asset.name, plain)
        return _check_nonempty(asset, plain, cache_dir, mirror)
    if (mirror / asset.cache_folder).is_dir():
        try:
            path = snapshot_download(
                asset.repo_id,
                repo_type=asset.repo_type,
                revision=asset.revision,
                cache_dir=mirror,
                allow_patterns=list(asset.allow_patterns) if asset.allow_patterns else None,
                local_files_only=True,
            )
        except _hub_errors() as e:
            reason = f"the mirror's HF cache {mirror / asset.cache_folder} lacks this revision ({_brief(e)})"
            raise DownloadError(
                asset.name, mirror / asset.cache_folder, _hub_message(asset, reason, mirror, mirror)
            ) from e
        return _check_nonempty(asset, Path(path), mirror, mirror)
    reason = (
        f"not in the local mirror (looked for {plain} and {mirror / asset.cache_folder}); the mirror replaces the "
        "network"
    )
    raise DownloadError(asset.name, plain, _hub_message(asset, reason, cache_dir, mirror))


def fetch_hub(
    asset: HubAsset,
    *,
    mirror: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The local snapshot directory of ``asset``: from ``mirror``, else the HF cache, else downloaded into it.

    A revision that is a commit hash is looked up in the cache first (no network when present); with
    ``HF_HUB_OFFLINE=1`` only the cache is used.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    if mirror is not None:
        return _hub_from_mirror(asset, Path(mirror), cache)
    offline = hub_offline()
    kwargs: dict[str, Any] = {
        "repo_type": asset.repo_type,
        "revision": asset.revision,
        "cache_dir": cache,
        "allow_patterns": list(asset.allow_patterns) if asset.allow_patterns else None,
    }
    try:
        if offline or _COMMIT_RE.fullmatch(asset.revision):
            try:
                path = snapshot_download(asset.repo_id, local_files_only=True, **kwargs)
                return _check_nonempty(asset, Path(path), cache, None)
            except LocalEntryNotFoundError:
                if offline:
                    raise
        path = snapshot_download(asset.repo_id, **kwargs)
    except _hub_errors() as e:
        if offline:
            reason = f"not in the local HF cache {cache}, and HF_HUB_OFFLINE=1 forbids downloading"
            if type(e) is not LocalEntryNotFoundError:  # its own text only repeats that
                reason += f" ({_brief(e)})"
        else:
            reason = f"the download failed and it is not in the local HF cache {cache} ({_brief(e)})"
        raise DownloadError(asset.name, cache / asset.cache_folder, _hub_message(asset, reason, cache, None)) from e
    log.info("%s: snapshot of %s@%s at %s", asset.name, asset.repo_id, asset.revision, path)
    return _check_nonempty(asset, Path(path), cache, None)


# ----------------------------------------------------------------------------------------------------------------
# dispatch and command line


def fetch_manual(asset: ManualAsset, *, mirror: str | os.PathLike[str] | None = None) -> Path:
    """Check a hand-placed file (copying it from ``mirror`` first when it is there); returns its path."""
    mirror_dir = Path(mirror) if mirror is not None else None
    if not asset.dest.is_file() and mirror_dir is not None and (mirror_dir / asset.dest.name).is_file():
        asset.dest.parent.mkdir(parents=True, exist_ok=True)
        part = asset.dest.with_name(asset.dest.name + ".part")
        try:
            shutil.copyfile(mirror_dir / asset.dest.name, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        got = sha256_file(part)
        if asset.sha256 is not None and got != asset.sha256:
            part.unlink()
            reason = f"checksum mismatch for the mirror copy: expected sha256 {asset.sha256}, got {got}"
            raise DownloadError(asset.name, asset.dest, _manual_message(asset, reason, mirror_dir))
        _place(part, asset.dest)
    if not asset.dest.is_file():
        reason = "not on disk" + (f" nor in the mirror {mirror_dir}" if mirror_dir is not None else "")
        raise DownloadError(asset.name, asset.dest, _manual_message(asset, reason, mirror_dir))
    got = sha256_file(asset.dest)
    if asset.sha256 is None:
        log.warning("%s: %s is not pinned; its sha256 is %s (pin it in the config)", asset.name, asset.dest, got)
    elif got != asset.sha256:
        reason = f"checksum mismatch: expected sha256 {asset.sha256}, got {got}"
        raise DownloadError(asset.name, asset.dest, _manual_message(asset, reason, mirror_dir))
    return asset.dest


def fetch(
    asset: Asset,
    *,
    mirror: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **url_options: Any,
) -> Path:
    """Fetch either kind of asset; ``url_options`` go to :func:`fetch_url` (retries, timeout, ...)."""
    if isinstance(asset, UrlAsset):
        return fetch_url(asset, mirror=mirror, **url_options)
    if isinstance(asset, HubAsset):
        return fetch_hub(asset, mirror=mirror, cache_dir=cache_dir)
    if isinstance(asset, ManualAsset):
        return fetch_manual(asset, mirror=mirror)
    raise TypeError(f"not an asset: {asset!r}")


def asset_from_dict(spec: Mapping[str, Any], *, dest: str | os.PathLike[str] | None = None) -> Asset:
    """Build an asset from its config entry: ``url`` + ``sha256`` (+ ``dest``), or ``repo_id`` + ``revision``."""
    spec = dict(spec)
    kind = spec.pop("kind", None) or ("hub" if "repo_id" in spec else "url")
    if kind == "manual":
        name = spec.get("name") or (Path(dest).name if dest is not None else None) or "file"
        where = dest if dest is not None else spec.get("dest")
        if not where:
            raise ValueError(f"manual asset {name!r} lacks dest (it may come from --out)")
        return ManualAsset(name=name, dest=Path(where), source=spec.get("source", ""), sha256=spec.get("sha256"))
    name = spec.get("name") or spec.get("repo_id") or spec.get("url")
    if not name:
        raise ValueError(f"asset without a name, url or repo_id: {spec!r}")
    spec["name"] = name
    if kind == "url":
        if dest is not None:
            spec["dest"] = dest
        missing = [k for k in ("url", "sha256", "dest") if not spec.get(k)]
        if missing:
            raise ValueError(f"URL asset {name!r} lacks {', '.join(missing)} (dest may come from --out)")
        return UrlAsset(name=name, url=spec["url"], sha256=spec["sha256"], dest=Path(spec["dest"]))
    if kind == "hub":
        missing = [k for k in ("repo_id", "revision") if not spec.get(k)]
        if missing:
            raise ValueError(f"Hub asset {name!r} lacks {', '.join(missing)}")
        patterns = spec.get("allow_patterns")
        return HubAsset(
            name=name,
            repo_id=spec["repo_id"],
            revision=str(spec["revision"]),
            repo_type=spec.get("repo_type", "model"),
            allow_patterns=tuple(patterns) if patterns else None,
        )
    raise ValueError(f"asset {name!r}: unknown kind {kind!r} (expected 'url' or 'hub')")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mendrepro.data.download",
        description="Fetch one checksummed file by URL, or one revision-pinned Hugging Face Hub snapshot.",
    )
    p.add_argument("--asset", required=True, help="the asset as JSON: {name,url,sha256} or {name,repo_id,revision,...}")
    p.add_argument("--out", required=True, help="URL asset: where the file goes; Hub asset: a JSON manifest")
    p.add_argument(
        "--mirror", default=None, help=f"a local mirror directory used instead of the network ({MIRROR_KEY})"
    )
    p.add_argument("--cache-dir", default=None, help="the HF cache for Hub assets (default: HF_HUB_CACHE)")
    p.add_argument("--retries", type=int, default=3, help="retries after a connection error (URL assets)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        spec = json.loads(args.asset)
        if not isinstance(spec, dict):
            raise ValueError("--asset must be a JSON object")
        asset = asset_from_dict(spec, dest=args.out)
    except ValueError as e:
        print(f"error: bad --asset: {e}", file=sys.stderr)
        return 2
    try:
        if isinstance(asset, UrlAsset):
            fetch_url(asset, mirror=args.mirror, retries=args.retries, progress=False if args.no_progress else None)
        elif isinstance(asset, ManualAsset):
            fetch_manual(asset, mirror=args.mirror)
        else:
            path = fetch_hub(asset, mirror=args.mirror, cache_dir=args.cache_dir)
            manifest = {
                "name": asset.name,
                "repo_id": asset.repo_id,
                "repo_type": asset.repo_type,
                "revision": asset.revision,
                "path": str(path.resolve()),
            }
            write_json_atomic(args.out, manifest)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
