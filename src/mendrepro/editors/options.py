"""Every editor's options as a typed dataclass, and their validation.

These classes import neither torch nor transformers, so the workflow can check the config's editor options at DAG
start in well under a second. ``choices`` and ``minimum`` in a field's metadata are what :func:`parse_options`
reports as the allowed values; a class may check more in ``__post_init__`` (which the editor then also relies on).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MODES = ("combine", "only_u", "only_delta", "only_smaller")
EDIT_LOSSES = ("mean", "sum")


def _choices(*values: Any) -> Any:
    return {"choices": values}


def _minimum(value: float) -> Any:
    return {"minimum": value}


@dataclass(frozen=True)
class MendConfig:
    """MEND's architecture; the ablations of Table 6 are settings of these fields."""

    rank: int = field(default=1920, metadata=_minimum(1))
    init: str = field(default="id", metadata=_choices("id", "xavier"))  # "id" (U = 0, residual), "xavier" (none)
    norm: bool = True
    share: bool = True
    mode: str = field(default="combine", metadata=_choices(*MODES))
    alpha_init: float = 1e-4
    sign: int = field(default=1, metadata=_choices(1, -1))
    n_blocks: int = field(default=2, metadata=_minimum(1))
    # The loss whose output gradients δ MEND transforms, for a batch of k edits: "mean", as released, the
    # token-weighted mean NLL over the whole batch (binary: the batch mean; algs/mend.py:edit,
    # ``edit_loss_fn(outputs, labels)["nll"]``); "sum", the sum over edits of each edit's token-mean NLL, under
    # which a batch's update is exactly the sum of its single-edit updates. Equal for one edit.
    edit_loss: str = field(default="mean", metadata=_choices(*EDIT_LOSSES))

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"MEND mode must be one of {MODES}, got {self.mode!r}")
        if self.init not in ("id", "xavier"):
            raise ValueError(f"MEND init must be 'id' or 'xavier', got {self.init!r}")
        if self.edit_loss not in EDIT_LOSSES:
            raise ValueError(f"MEND edit_loss must be one of {EDIT_LOSSES}, got {self.edit_loss!r}")
        if self.sign not in (1, -1):
            raise ValueError(f"MEND sign must be +1 (as released) or -1 (as in the paper), got {self.sign}")


@dataclass(frozen=True)
class FTConfig:
    lr: float = field(default=5e-6, metadata=_minimum(0))
    max_steps: int = field(default=100, metadata=_minimum(0))
    grad_clip: float = field(default=100.0, metadata=_minimum(0))
    kl: bool = False  # set from the editor kind (ftkl), not from the config's options
    edit_weight: float = field(default=0.01, metadata=_minimum(0))  # weight of L_edit next to the KL in FT+KL


@dataclass(frozen=True)
class FTLConfig(FTConfig):
    """FT+L (Zhu et al. 2020): FT's options and the radius of the L∞ ball that each edited matrix stays in."""

    # Not a paper value (MEND's tables have no FT+L row): small next to the tiny models' weights (about 0.05).
    eps: float = field(default=1e-3, metadata=_minimum(0))

    def __post_init__(self):
        if self.eps <= 0:  # a radius of 0 allows no change at all: surely a mistake
            raise ValueError(f"FT+L eps must be > 0, got {self.eps}")


@dataclass(frozen=True)
class KEConfig:
    """KE's sizes (the paper's by default; the tiny profile passes smaller ones)."""

    lstm_hidden: int = field(default=512, metadata=_minimum(1))  # per direction
    cond_dim: int = field(default=768, metadata=_minimum(1))
    head_hidden: int = field(default=512, metadata=_minimum(1))


@dataclass(frozen=True)
class ENNConfig:
    step_init: float = 1e-2
    c_base: float = field(default=1.0, metadata=_minimum(0))  # 1 for FEVER/zsRE, 10 for Wikitext as released
    n_inner_steps: int = field(default=1, metadata=_minimum(1))
    first_order: bool = False

    def __post_init__(self):
        if self.n_inner_steps < 1:
            raise ValueError(f"ENN needs at least one inner step, got {self.n_inner_steps}")


@dataclass(frozen=True)
class CacheConfig:
    # None: tuned on training requests (CacheEditor.tune); the pipeline tunes it before evaluating.
    threshold: float | None = field(default=None, metadata=_minimum(0))
    metric: str = field(default="cosine", metadata=_choices("cosine"))  # cosine distance = 1 - cos; the only one


class OptionError(ValueError):
    """A config's editor options that do not fit the editor's option class; the message is one line."""


def _type_ok(value: Any, tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_type_ok(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # YAML writes 1.0e-4 as a float but 100 as an int; both are numbers
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(tp))
    return "null" if tp is type(None) else tp.__name__


def allowed(f: dataclasses.Field, tp: Any) -> str:
    """What a field accepts, in words: its choices, else its type and lower bound."""
    if "choices" in f.metadata:
        return "one of " + ", ".join(repr(c) for c in f.metadata["choices"])
    bound = f" >= {f.metadata['minimum']}" if "minimum" in f.metadata else ""
    return f"{_type_name(tp)}{bound}"


def parse_options(cls: type[T], options: dict[str, Any] | None, where: str) -> T:
    """``cls(**options)`` after checking every key, type and value; :class:`OptionError` names ``where`` (e.g.
    ``editor 'mend' (kind mend)``), the key and what it allows."""
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in options.items():
        if key not in fields:
            raise OptionError(f"{where}: unknown option '{key}'; options: {', '.join(sorted(fields))}")
        f, tp = fields[key], hints[key]
        ok = _type_ok(value, tp)
        if ok and "choices" in f.metadata:
            ok = value in f.metadata["choices"]
        if ok and "minimum" in f.metadata and value is not None:
            ok = value >= f.metadata["minimum"]
        if not ok:
            raise OptionError(f"{where}: option '{key}' = {value!r} is not allowed; '{key}' takes {allowed(f, tp)}")
    try:
        return cls(**options)
    except ValueError as e:  # a rule of __post_init__ that spans fields
        raise OptionError(f"{where}: {e}") from None
