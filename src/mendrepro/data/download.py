"""Fetch the paper profile's model inputs: Hugging Face Hub snapshots (revision-pinned) and hand-placed files.

* :class:`HubAsset`: a model or dataset repository on the Hub, fetched with
  ``huggingface_hub.snapshot_download`` at a pinned revision into the HF cache. ``HF_HUB_OFFLINE=1`` restricts it
  to the local cache.
* :class:`ManualAsset`: a file with no stable download URL (De Cao's state dicts, in the release's Google Drive
  folder), placed by hand. It is only ever read: found where it was placed (or in the mirror) and checksummed.

Local mirror (config key ``data.mirror``): a directory used *instead of* the network, for machines behind a
firewall. Layout::

    MIRROR/<file name>                      a hand-placed file, by its file name
    MIRROR/models/<org>/<name>/...          a Hub repository as a plain snapshot directory, e.g. written by
    MIRROR/datasets/<org>/<name>/...          ``hf download REPO --revision REV --local-dir MIRROR/models/REPO``
    MIRROR/models--<org>--<name>/...        or a copied HF cache (``hf download ... --cache-dir MIRROR``)

Every failure raises :class:`DownloadError`, whose message names what is missing, where it is expected on disk and
how to place it there by hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

MIRROR_KEY = "data.mirror"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_HASH_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file as 64 lowercase hex digits, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


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

    Fetching it finds it (at ``dest`` or in the mirror, never copying it) and verifies ``sha256`` when one is
    pinned; an unpinned file is accepted and its sha256 logged, so it can be pinned in the config.
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


Asset = HubAsset | ManualAsset


# ----------------------------------------------------------------------------------------------------------------
# messages


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
# hand-placed files and dispatch


def fetch_manual(asset: ManualAsset, *, mirror: str | os.PathLike[str] | None = None) -> Path:
    """The path of a hand-placed file: ``dest``, else ``mirror/<its name>``, checked against a pinned sha256.

    The file is only read, never copied or moved: the user's copy is the only one.
    """
    mirror_dir = Path(mirror) if mirror is not None else None
    path = asset.dest
    if not path.is_file() and mirror_dir is not None and (mirror_dir / asset.dest.name).is_file():
        path = mirror_dir / asset.dest.name
    if not path.is_file():
        reason = "not on disk" + (f" nor in the mirror {mirror_dir}" if mirror_dir is not None else "")
        raise DownloadError(asset.name, asset.dest, _manual_message(asset, reason, mirror_dir))
    got = sha256_file(path)
    if asset.sha256 is None:
        log.warning("%s: %s is not pinned; its sha256 is %s (pin it in the config)", asset.name, path, got)
    elif got != asset.sha256:
        reason = f"{path} has sha256 {got}, but the config pins {asset.sha256}"
        raise DownloadError(asset.name, asset.dest, _manual_message(asset, reason, mirror_dir))
    return path


def fetch(
    asset: Asset,
    *,
    mirror: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Fetch either kind of asset."""
    if isinstance(asset, HubAsset):
        return fetch_hub(asset, mirror=mirror, cache_dir=cache_dir)
    if isinstance(asset, ManualAsset):
        return fetch_manual(asset, mirror=mirror)
    raise TypeError(f"not an asset: {asset!r}")


def asset_from_dict(spec: Mapping[str, Any], *, dest: str | os.PathLike[str] | None = None) -> Asset:
    """An asset from its config entry: ``kind: manual`` with ``source`` (and ``dest``), or ``repo_id``, ``revision``."""
    spec = dict(spec)
    kind = spec.pop("kind", None) or ("hub" if "repo_id" in spec else None)
    if kind == "manual":
        name = spec.get("name") or (Path(dest).name if dest is not None else None) or "file"
        where = dest if dest is not None else spec.get("dest")
        if not where:
            raise ValueError(f"manual asset {name!r} lacks dest")
        return ManualAsset(name=name, dest=Path(where), source=spec.get("source", ""), sha256=spec.get("sha256"))
    name = spec.get("name") or spec.get("repo_id")
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
    raise ValueError(f"asset {name!r}: unknown kind {kind!r} (expected 'manual', or 'hub' with repo_id)")
