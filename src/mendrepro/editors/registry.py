"""The one map from an editor kind (a config entry's ``kind``) to its class and its options.

Adding an editor is a module under ``mendrepro/editors/``, its options class in :mod:`mendrepro.editors.options`,
one line in :data:`KINDS` and an entry in the config's ``editors``. The classes are named as ``module:Class`` and
imported on first use, so reading the registry (the workflow does, at DAG start) does not import torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from mendrepro.editors.options import (
    CacheConfig,
    ENNConfig,
    FTConfig,
    FTLConfig,
    KEConfig,
    MendConfig,
    OptionError,
    parse_options,
)


@dataclass(frozen=True)
class EditorKind:
    """What the pipeline needs to know about one kind of editor."""

    kind: str
    cls_path: str  # "module:Class" of an mendrepro.editors.base.Editor subclass
    options: type  # its options dataclass
    learned: bool  # trained by mendrepro.train before evaluation (its run directory holds editor.pt)
    fixed: dict[str, Any] = field(default_factory=dict)  # options the kind itself sets (FT+KL: kl=True)
    loc_sampler: bool = False  # takes a sampler of training-set locality batches (FT+KL)
    tuned: bool = False  # tunes itself on training requests before evaluation when not configured (the cache)

    def editor_class(self) -> type:
        module, name = self.cls_path.split(":")
        return getattr(importlib.import_module(module), name)

    def parse(self, options: dict[str, Any] | None, editor: str = "", context: str = "") -> Any:
        """The typed options of one configured editor; :class:`~mendrepro.editors.options.OptionError` names
        the editor (and ``context``, e.g. a per-task override), the key and the allowed values."""
        where = f"editor '{editor or self.kind}' (kind {self.kind}{', ' + context if context else ''})"
        fixed = sorted(set(options or {}) & set(self.fixed))
        if fixed:
            raise OptionError(f"{where}: option '{fixed[0]}' is set by the kind '{self.kind}', not by the config")
        return parse_options(self.options, {**(options or {}), **self.fixed}, where)


KINDS: dict[str, EditorKind] = {
    k.kind: k
    for k in (
        EditorKind("mend", "mendrepro.editors.mend:MEND", MendConfig, learned=True),
        EditorKind("ft", "mendrepro.editors.ft:FineTune", FTConfig, learned=False, fixed={"kl": False}),
        EditorKind(
            "ftkl", "mendrepro.editors.ft:FineTune", FTConfig, learned=False, fixed={"kl": True}, loc_sampler=True
        ),
        EditorKind("ke", "mendrepro.editors.ke:KnowledgeEditor", KEConfig, learned=True),
        EditorKind("enn", "mendrepro.editors.enn:EditableNetwork", ENNConfig, learned=True),
        EditorKind("cache", "mendrepro.editors.cache:CacheEditor", CacheConfig, learned=False, tuned=True),
        EditorKind("ftl", "mendrepro.editors.ftl:ConstrainedFineTune", FTLConfig, learned=False, fixed={"kl": False}),
    )
}


def editor_kind(kind: str, editor: str = "") -> EditorKind:
    """The registry entry of ``kind``; a ValueError naming the editor and the known kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"editor '{editor or kind}': unknown kind '{kind}'; kinds: {', '.join(KINDS)}")
    return KINDS[kind]
