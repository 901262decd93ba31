"""Typed configuration of one experiment, built from the (validated) Snakemake config mapping."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mendrepro.models import ModelSpec

T = TypeVar("T")


def from_dict(cls: type[T], d: dict[str, Any] | None, where: str) -> T:
    """``cls(**d)``, rejecting unknown keys with a message that names the config section."""
    d = dict(d or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"config section '{where}': unknown key(s) {unknown}; known: {sorted(names)}")
    return cls(**d)


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training of a tiny base model on the synthetic world (tiny profile only)."""

    steps: int = 3000
    lr: float = 1e-3
    batch_size: int = 64
    eval_every: int = 250
    target_acc: float = 0.99  # stop early once the model knows this fraction of its training facts
    warmup: int = 100


@dataclass(frozen=True)
class TrainConfig:
    """The editor training loop shared by the learned editors."""

    steps: int = 2000
    lr: float = 1e-4
    accumulate: int = 10  # edits per optimiser step
    edits_per_step: int = 1  # k simultaneous edits per training example (Table 5 trains with k)
    grad_clip: float = 100.0
    c_edit: float = 0.1
    c_loc: float = 1.0
    n_loc: int = 1
    val_every: int = 500
    n_val: int = 50
    patience: int = 2000
    seed: int = 0
    # "independent": every step draws its edits afresh; "epoch": the release's order, a permutation per epoch.
    sampling: str = "independent"


@dataclass(frozen=True)
class EvalConfig:
    n_edits: int = 100  # edits evaluated (batches of k count k each)
    k: int = 1
    n_loc: int = 4  # locality examples scored before and after each edit
    seed: int = 0


@dataclass(frozen=True)
class Experiment:
    """Everything a command needs for one (task, model, editor)."""

    profile: str
    task: str
    model: ModelSpec
    editor: str = ""
    editor_kind: str = ""
    editor_options: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        d = json.loads(text)
        model = ModelSpec.from_dict(d["model"]["name"], d["model"])
        return cls(
            profile=d["profile"],
            task=d["task"],
            model=model,
            editor=d.get("editor", ""),
            editor_kind=d.get("editor_kind", ""),
            editor_options=d.get("editor_options", {}),
            task_options=d.get("task_options", {}),
            pretrain=from_dict(PretrainConfig, d.get("pretrain"), "pretrain"),
            train=from_dict(TrainConfig, d.get("train"), "train"),
            eval=from_dict(EvalConfig, d.get("eval"), "eval"),
            seed=d.get("seed", 0),
        )
