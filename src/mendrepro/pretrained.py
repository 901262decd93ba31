"""Pretrained base models (paper profile): build one from a *source manifest* instead of a tiny saved model.

A model directory ``results/<profile>/models/<name>/`` holds either a tiny model written by
:func:`mendrepro.models.save_model`, or a ``source.json`` written by :func:`write_source_manifest` that says where
the real checkpoint lies. :func:`mendrepro.models.load_model` looks for ``source.json`` first and, when present,
calls :func:`load_from_source`; everything downstream still gets ``(model, tokenizer)``.

Manifest (``source.json``)::

    {
      "format": 1,
      "name": "bart-base-zsre",
      "arch": "bart",                                   # a key of mendrepro.models.ARCHS
      "hub": {"repo_id": "facebook/bart-base", "revision": "<commit>", "path": "<snapshot dir>"},
      "tokenizer": {"repo_id", "revision", "path"} | null,   # null: the tokenizer of the hub snapshot
      "state_dict": {"path": "<file>", "sha256": "<64 hex>" | null} | null,   # De Cao's checkpoint, if any
      "strip_prefix": "model." | null,                  # null: "model.", as the release
      "add_pad_token": false,                           # true for gpt2 / gptneo / gptj
      "torch_dtype": "float32"                          # or "bfloat16" / "float16" for a frozen base model
    }

Relative paths are taken relative to the current directory (the workflow runs from the repository root).

Building (as the MEND release does):

* ``bart``/``t5``/``gpt2``/``gptneo``/``gptj``: ``<HF class>.from_pretrained(hub.path, dtype=torch_dtype)``.
  ``bert``: :class:`~mendrepro.models.BertClassifier` over ``BertConfig.from_pretrained(hub.path)`` whose ``.bert``
  is ``BertModel.from_pretrained(hub.path)`` (the Linear(hidden→1) head starts random and comes from the state
  dict).
* Tokenizer: ``AutoTokenizer.from_pretrained(tokenizer.path or hub.path)`` (fast).
* State dict: ``torch.load(..., weights_only=True)`` (sha256 checked when the manifest has one), then loaded
  strictly under the first key renaming that fits the model, tried in this order (``P`` = ``strip_prefix``):
  keys as they are; ``P`` stripped once; ``P`` stripped twice; and, for a model with a ``bert`` submodule, each of
  those with a leading ``P`` then mapped to ``bert.``. The release strips ``model.`` once; De Cao's FEVER keys
  ``model.model.*`` / ``model.classifier.*`` become ``bert.*`` / ``classifier.*`` with "strip once, then map".
  A renaming *fits* when its keys equal the model's state-dict keys, except that (a) a key naming a
  non-persistent buffer of the model (e.g. BERT's ``embeddings.position_ids``, saved by older transformers) is
  dropped, and (b) a key may be missing when its parameter is tied to one that is present (e.g. BART's
  ``lm_head.weight`` = ``model.shared.weight``). When none fits, a :class:`ValueError` lists the missing and
  unexpected keys (first 10 of each) of the closest renaming.
* ``add_pad_token``: add the special token ``[PAD]`` to the tokenizer, resize the token embeddings to
  ``len(tokenizer)``, and set the ``[PAD]`` row of the input embedding (and of the LM head and its bias when not
  tied) to the mean of the other rows; ``config.pad_token_id`` = its id. As the release, the resize goes to
  ``len(tokenizer)`` even when the checkpoint has more rows than the tokenizer (GPT-J: 50400 → 50258; the dropped
  rows belong to no token). A tokenizer that already has ``[PAD]`` is left as it is.
* ``model.eval()``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from mendrepro.config import FAMILIES
from mendrepro.data.download import HubAsset, asset_from_dict, fetch, fetch_hub, sha256_file
from mendrepro.data.formats import write_json_atomic
from mendrepro.models import ARCHS, BertClassifier

log = logging.getLogger(__name__)

MANIFEST_NAME = "source.json"
MANIFEST_FORMAT = 1
DEFAULT_STRIP_PREFIX = "model."
PAD_TOKEN = "[PAD]"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_MAX_LISTED = 10


# ----------------------------------------------------------------------------------------------------------------
# manifest


def _hub_ref(d: Mapping[str, Any] | None, what: str) -> dict[str, str] | None:
    if d is None:
        return None
    missing = [k for k in ("repo_id", "revision", "path") if not d.get(k)]
    if missing:
        raise ValueError(f"{what}: missing {missing} (need repo_id, revision and path)")
    return {"repo_id": str(d["repo_id"]), "revision": str(d["revision"]), "path": str(d["path"])}


def _state_dict_ref(d: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    if d is None:
        return None
    if not d.get("path"):
        raise ValueError("state_dict: missing 'path'")
    sha = d.get("sha256")
    return {"path": str(d["path"]), "sha256": str(sha).strip().lower() if sha else None}


def validate_manifest(m: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised copy of manifest ``m``; a :class:`ValueError` naming the bad field otherwise."""
    for k in ("name", "arch", "hub"):
        if not m.get(k):
            raise ValueError(f"source manifest: missing {k!r}")
    arch = m["arch"]
    if arch not in ARCHS:
        raise ValueError(f"source manifest {m['name']!r}: unknown arch {arch!r} (one of {sorted(ARCHS)})")
    dtype = m.get("torch_dtype") or "float32"
    if dtype not in DTYPES:
        raise ValueError(f"source manifest {m['name']!r}: torch_dtype {dtype!r} is not one of {sorted(DTYPES)}")
    add_pad = bool(m.get("add_pad_token", False))
    if add_pad and FAMILIES[arch] != "lm":
        raise ValueError(f"source manifest {m['name']!r}: add_pad_token is for generation models, not {arch!r}")
    return {
        "format": int(m.get("format", MANIFEST_FORMAT)),
        "name": str(m["name"]),
        "arch": arch,
        "hub": _hub_ref(m["hub"], "hub"),
        "tokenizer": _hub_ref(m.get("tokenizer"), "tokenizer"),
        "state_dict": _state_dict_ref(m.get("state_dict")),
        "strip_prefix": m.get("strip_prefix"),
        "add_pad_token": add_pad,
        "torch_dtype": dtype,
    }


def write_source_manifest(
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    arch: str,
    hub_path: str | os.PathLike[str],
    hub_repo: str,
    revision: str,
    tokenizer: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, Any] | None = None,
    strip_prefix: str | None = None,
    add_pad_token: bool = False,
    torch_dtype: str = "float32",
) -> Path:
    """Write ``out_dir/spec.json`` and ``out_dir/source.json`` (each atomically; ``out_dir`` may be created).

    ``tokenizer`` is ``{"repo_id", "revision", "path"}`` (``None``: the snapshot's own tokenizer);
    ``state_dict`` is ``{"path", "sha256"}``. The snapshot, tokenizer and state-dict paths must exist. Returns
    the path of ``source.json``, which is written last: ``load_model`` takes its presence as the marker.
    """
    manifest = validate_manifest(
        {
            "format": MANIFEST_FORMAT,
            "name": name,
            "arch": arch,
            "hub": {"repo_id": hub_repo, "revision": revision, "path": str(hub_path)},
            "tokenizer": tokenizer,
            "state_dict": state_dict,
            "strip_prefix": strip_prefix,
            "add_pad_token": add_pad_token,
            "torch_dtype": torch_dtype,
        }
    )
    for what, ref, is_dir in (
        ("hub snapshot", manifest["hub"], True),
        ("tokenizer snapshot", manifest["tokenizer"], True),
        ("state dict", manifest["state_dict"], False),
    ):
        if ref is not None and not (Path(ref["path"]).is_dir() if is_dir else Path(ref["path"]).is_file()):
            raise FileNotFoundError(f"model {name!r}: {what} {ref['path']} not found (fetch it first)")
    out = Path(out_dir)
    write_json_atomic(out / "spec.json", {"name": name, "arch": arch}, indent=None)
    return write_json_atomic(out / MANIFEST_NAME, manifest)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate ``source.json`` (or the ``source.json`` inside directory ``path``)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"source manifest {p} is not valid JSON: {e}") from e
    try:
        return validate_manifest(raw)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from e


# ----------------------------------------------------------------------------------------------------------------
# state dicts


def _renamings(prefix: str, model: nn.Module) -> list[tuple[str, Callable[[str], str]]]:
    def strip(k: str, times: int) -> str:
        for _ in range(times):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        return k

    out: list[tuple[str, Callable[[str], str]]] = [
        ("keys as saved", lambda k: k),
        (f"{prefix!r} stripped", lambda k: strip(k, 1)),
        (f"{prefix!r} stripped twice", lambda k: strip(k, 2)),
    ]
    if isinstance(getattr(model, "bert", None), nn.Module):

        def to_bert(k: str) -> str:
            return "bert." + k[len(prefix) :] if k.startswith(prefix) else k

        out += [
            (f"leading {prefix!r} → 'bert.'", to_bert),
            (f"{prefix!r} stripped, then leading {prefix!r} → 'bert.'", lambda k: to_bert(strip(k, 1))),
            (f"{prefix!r} stripped twice, then leading {prefix!r} → 'bert.'", lambda k: to_bert(strip(k, 2))),
        ]
    return out


def _tied_names(model: nn.Module) -> dict[str, set[str]]:
    """For each parameter name, every name of the same tensor (tied weights) including itself."""
    by_id: dict[int, set[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(p), set()).add(n)
    return {n: names for names in by_id.values() for n in names}


def _mismatch(keys: set[str], expected: set[str], ignorable: set[str], tied: dict[str, set[str]]):
    unexpected = sorted(keys - expected - ignorable)
    missing = sorted(k for k in expected - keys if not (tied.get(k, {k}) - {k}) & keys)
    return missing, unexpected


def load_state_dict_flexibly(model: nn.Module, state: Mapping[str, torch.Tensor], strip_prefix: str | None) -> str:
    """Load ``state`` into ``model`` under the first key renaming that fits (see the module doc); its label.

    Nothing is copied unless a renaming fits, so a failure leaves ``model`` untouched.
    """
    prefix = strip_prefix or DEFAULT_STRIP_PREFIX
    expected = set(model.state_dict().keys())
    ignorable = {n for n, _ in model.named_buffers()} - expected  # non-persistent buffers
    tied = _tied_names(model)
    tried: list[tuple[int, str, list[str], list[str]]] = []
    seen: set[tuple[str, ...]] = set()
    for label, rename in _renamings(prefix, model):
        renamed = {rename(k): v for k, v in state.items()}
        if len(renamed) != len(state):
            continue  # the renaming merges keys: not a candidate
        sig = tuple(sorted(renamed))
        if sig in seen:
            continue
        seen.add(sig)
        missing, unexpected = _mismatch(set(renamed), expected, ignorable, tied)
        if missing or unexpected:
            tried.append((len(missing) + len(unexpected), label, missing, unexpected))
            continue
        kept = {k: v for k, v in renamed.items() if k not in ignorable}
        try:
            result = model.load_state_dict(kept, strict=False)
        except RuntimeError as e:  # shapes
            raise ValueError(f"state dict does not fit the model ({label}): {e}") from e
        assert not result.unexpected_keys, result.unexpected_keys
        return label
    _, label, missing, unexpected = min(tried, key=lambda t: t[0])

    def listed(ks: list[str]) -> str:
        more = f" ... and {len(ks) - _MAX_LISTED} more" if len(ks) > _MAX_LISTED else ""
        return ", ".join(ks[:_MAX_LISTED]) + more if ks else "none"

    raise ValueError(
        f"state dict keys do not match the model under any renaming ({', '.join(t[1] for t in tried)}); "
        f"closest ({label}): {len(missing)} missing: {listed(missing)}; "
        f"{len(unexpected)} unexpected: {listed(unexpected)}"
    )


def _load_state_dict_file(ref: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    path = Path(ref["path"])
    if not path.is_file():
        raise FileNotFoundError(f"model {name!r}: state dict {path} not found; fetch it first (paper profile)")
    if ref.get("sha256"):
        got = sha256_file(path)
        if got != ref["sha256"]:
            raise ValueError(f"model {name!r}: state dict {path} has sha256 {got}, expected {ref['sha256']}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a Lightning checkpoint
    if not isinstance(state, Mapping):
        raise ValueError(f"model {name!r}: {path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


# ----------------------------------------------------------------------------------------------------------------
# [PAD]


def add_pad_token(model: nn.Module, tok: PreTrainedTokenizerBase) -> int:
    """Add ``[PAD]`` as the pad token, as the release does (see the module doc); its id."""
    n_before = len(tok)
    tok.add_special_tokens({"pad_token": PAD_TOKEN})
    pad_id = tok.convert_tokens_to_ids(PAD_TOKEN)
    if len(tok) > n_before:
        model.resize_token_embeddings(len(tok), mean_resizing=False)
        inp = model.get_input_embeddings().weight
        out = model.get_output_embeddings()
        rows = [inp]
        if out is not None and out.weight is not inp:
            rows.append(out.weight)
            if getattr(out, "bias", None) is not None:
                rows.append(out.bias)
        with torch.no_grad():
            for w in rows:
                total = torch.sum(w, 0, dtype=torch.float32) - w[pad_id].float()
                w[pad_id] = (total / (w.shape[0] - 1)).to(w.dtype)
    elif pad_id >= model.get_input_embeddings().weight.shape[0]:
        raise ValueError(
            f"{PAD_TOKEN} has id {pad_id} but the model has only {len(model.get_input_embeddings().weight)} rows"
        )
    model.config.pad_token_id = pad_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = pad_id
    return pad_id


# ----------------------------------------------------------------------------------------------------------------
# building


def load_from_source(
    manifest: Mapping[str, Any] | str | os.PathLike[str], arch: str | None = None
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Build ``(model, tokenizer)`` from a source manifest (a dict, ``source.json`` or its directory).

    ``arch``, when given, must match the manifest's. The model is returned in eval mode.
    """
    m = validate_manifest(manifest) if isinstance(manifest, Mapping) else read_manifest(manifest)
    name = m["name"]
    if arch is not None and arch != m["arch"]:
        raise ValueError(f"model {name!r}: the config says arch {arch!r} but its source manifest says {m['arch']!r}")
    snapshot = Path(m["hub"]["path"])
    if not snapshot.is_dir():
        raise FileNotFoundError(
            f"model {name!r}: snapshot {snapshot} of {m['hub']['repo_id']}@{m['hub']['revision']} not found; "
            "fetch it again (paper profile download rule)"
        )
    dtype = DTYPES[m["torch_dtype"]]
    tok_path = Path(m["tokenizer"]["path"]) if m["tokenizer"] else snapshot
    tok = AutoTokenizer.from_pretrained(tok_path, use_fast=True)

    if m["arch"] == "bert":
        model = BertClassifier(BertConfig.from_pretrained(snapshot))
        model.bert = BertModel.from_pretrained(snapshot, dtype=torch.float32)
        model.to(dtype)
    else:
        model = ARCHS[m["arch"]][1].from_pretrained(snapshot, dtype=dtype)

    if m["state_dict"] is not None:
        state = _load_state_dict_file(m["state_dict"], name)
        try:
            how = load_state_dict_flexibly(model, state, m["strip_prefix"])
        except ValueError as e:
            raise ValueError(f"model {name!r}: {m['state_dict']['path']}: {e}") from e
        log.info("model %r: loaded %s (%s)", name, m["state_dict"]["path"], how)
    elif m["arch"] == "bert":
        log.warning("model %r: no state dict, so the classifier head is randomly initialised", name)

    if m["add_pad_token"]:
        add_pad_token(model, tok)
    model.eval()
    return model, tok


# Files a model or tokenizer snapshot needs (no TF/Flax/ONNX weights).
MODEL_FILES = ("*.json", "*.txt", "*.model", "*.safetensors", "*.bin")
TOKENIZER_FILES = ("*.json", "*.txt", "*.model")


def fetch_source(
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    arch: str,
    source: Mapping[str, Any],
    mirror: str | os.PathLike[str] | None = None,
) -> Path:
    """Fetch a config entry's ``source`` (Hub snapshot, tokenizer, state dict) and write its manifest in ``out_dir``.

    Raises :class:`~mendrepro.data.download.DownloadError` naming what is missing and how to place it by hand.
    """
    hub = HubAsset(name=name, repo_id=source["repo_id"], revision=source["revision"], allow_patterns=MODEL_FILES)
    hub_path = fetch_hub(hub, mirror=mirror)
    tokenizer = None
    if source.get("tokenizer"):
        tok_asset = HubAsset(
            name=f"{name} tokenizer",
            repo_id=source["tokenizer"],
            revision=source.get("tokenizer_revision", "main"),
            allow_patterns=TOKENIZER_FILES,
        )
        path = fetch_hub(tok_asset, mirror=mirror)
        tokenizer = {"repo_id": tok_asset.repo_id, "revision": tok_asset.revision, "path": str(path)}
    state_dict, strip_prefix = None, None
    if source.get("state_dict"):
        spec = dict(source["state_dict"])
        dest = spec.pop("file")
        strip_prefix = spec.pop("strip_prefix", None)
        spec.setdefault("name", f"{name} state dict")
        path = fetch(asset_from_dict(spec, dest=dest), mirror=mirror)
        state_dict = {"path": str(path), "sha256": spec.get("sha256")}
    return write_source_manifest(
        out_dir,
        name=name,
        arch=arch,
        hub_path=hub_path,
        hub_repo=source["repo_id"],
        revision=source["revision"],
        tokenizer=tokenizer,
        state_dict=state_dict,
        strip_prefix=strip_prefix,
        add_pad_token=bool(source.get("add_pad_token", False)),
        torch_dtype=source.get("torch_dtype", "float32"),
    )
