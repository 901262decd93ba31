"""config/README.md documents every key of config/schema.yaml, and nothing else; and every editor option."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "config" / "README.md"


def schema_keys(node: dict, path: str = "") -> set[str]:
    """Dotted key paths of a JSON schema: ``*`` for a name of the user's choice, ``[]`` for each list item."""
    keys: set[str] = set()

    def sub(name: str) -> str:
        return f"{path}.{name}" if path else name

    props = node.get("properties", {})
    for name, child in props.items():
        keys |= {sub(name)} | schema_keys(child, sub(name))
    keys |= {sub(name) for name in node.get("required", []) if name not in props}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and {"properties", "required", "additionalProperties"} & set(extra):
        keys |= {sub("*")} | schema_keys(extra, sub("*"))
    items = node.get("items")
    if isinstance(items, dict) and {"properties", "required"} & set(items):
        keys |= schema_keys(items, path + "[]")
    return keys


def documented(first_header_cell: str) -> list[str]:
    """The backquoted first cells of the README's tables whose header starts with ``first_header_cell``."""
    keys, inside = [], False
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            inside = False
        elif cells[0] == first_header_cell:
            inside = True
        elif inside and (m := re.fullmatch(r"`([^`]+)`", cells[0])):
            keys.append(m.group(1))
    return keys


def pattern(doc_key: str) -> re.Pattern:
    """A documented key as a pattern: each ``<placeholder>`` segment stands for any one schema segment."""
    parts = re.split(r"(<[^<>.]+>)", doc_key)
    return re.compile("".join(r"[^.\[\]]+" if p.startswith("<") else re.escape(p) for p in parts))


def test_every_schema_key_is_documented_and_every_documented_key_is_in_the_schema():
    keys = schema_keys(yaml.safe_load((ROOT / "config" / "schema.yaml").read_text()))
    docs = documented("Key")
    assert len(keys) > 100 and len(docs) > 50
    assert len(docs) == len(set(docs)), sorted(k for k in docs if docs.count(k) > 1)
    patterns = {d: pattern(d) for d in docs}
    undocumented = sorted(k for k in keys if not any(p.fullmatch(k) for p in patterns.values()))
    unknown = sorted(d for d, p in patterns.items() if not any(p.fullmatch(k) for k in keys))
    assert not undocumented, f"schema keys missing from config/README.md: {undocumented}"
    assert not unknown, f"keys in config/README.md that config/schema.yaml does not have: {unknown}"


def test_every_editor_option_is_documented_under_its_kinds():
    from mendrepro.editors.cache import CacheConfig
    from mendrepro.editors.enn import ENNConfig
    from mendrepro.editors.ft import FTConfig
    from mendrepro.editors.ke import KEConfig
    from mendrepro.editors.mend import MendConfig
    from mendrepro.editors.registry import KINDS

    ft = {f.name for f in dataclasses.fields(FTConfig)} - {"kl"}  # kl: set by the kind (ftkl), not an option
    expected = {
        "mend": {f.name for f in dataclasses.fields(MendConfig)},
        "ft": ft - {"edit_weight"},
        "ftkl": ft,
        "ke": {f.name for f in dataclasses.fields(KEConfig)},
        "enn": {f.name for f in dataclasses.fields(ENNConfig)},
        "cache": {f.name for f in dataclasses.fields(CacheConfig)},
        "ftl": ft - {"edit_weight"} | {"eps"},
    }
    assert set(expected) == set(KINDS), "a kind of the registry whose options this test does not know"
    got: dict[str, set[str]] = {kind: set() for kind in expected}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (m := re.fullmatch(r"`(\w+)`", cells[0])) and set(cells[1].split(", ")) <= set(got):
            for kind in cells[1].split(", "):
                got[kind].add(m.group(1))
    assert got == expected


def test_the_shipped_configs_use_only_documented_keys():
    """The key patterns on real configs: every key path of the shipped configs matches a documented key."""
    docs = [pattern(d) for d in documented("Key")]
    # Free-form mappings: their keys are editor options, learning rates by run, or overrides of `train`/`eval`.
    opaque = [
        pattern(d)
        for d in ("train_lr", "train_c_edit", "editors.<e>.options", "editors.<e>.per_task", "editors.<e>.train",
                  "editors.<e>.eval", "editors.<e>.per_model.<m>.train", "models.<m>.train",
                  "tables.table5.batches[].train")
    ]  # fmt: skip

    def paths(obj, path=""):
        if any(o.fullmatch(path) for o in opaque):
            return
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield f"{path}.{k}" if path else k
                yield from paths(v, f"{path}.{k}" if path else k)
        elif isinstance(obj, list):
            for v in obj:
                yield from paths(v, path + "[]")

    for cfg in ("config/tiny.yaml", "config/paper.yaml", "tests/fixtures/micro.yaml"):
        found = set(paths(yaml.safe_load((ROOT / cfg).read_text())))
        assert "tables.table4.experiments[].model" in found and "train.steps" in found
        missing = sorted(p for p in found if not any(d.fullmatch(p) for d in docs))
        assert not missing, f"{cfg}: keys not in config/README.md: {missing}"
