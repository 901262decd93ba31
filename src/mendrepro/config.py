"""Typed configuration of one experiment, and its resolution from the (schema-validated) Snakemake config.

:func:`resolve_experiment` turns config + task + model + editor (+ seed) into the experiment mapping a command
receives as ``--exp`` JSON; :meth:`Experiment.from_dict` types it. The workflow imports this module at DAG start,
so it imports neither torch nor transformers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mendrepro.editors.registry import editor_kind

T = TypeVar("T")

# Each architecture's output family: how its edits are scored and its locality measured.
FAMILIES = {"bart": "seq2seq", "t5": "seq2seq", "gpt2": "lm", "gptneo": "lm", "gptj": "lm", "bert": "binary"}


@dataclass(frozen=True)
class ModelSpec:
    """One base model: its architecture, size, and which weights editors change."""

    name: str
    arch: str  # a key of FAMILIES
    edit_params: tuple[str, ...]
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ffn: int = 512
    max_len: int = 64
    extra: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return FAMILIES[self.arch]

    @classmethod
    def from_dict(cls, name: str, d: dict) -> ModelSpec:
        known = {k: d[k] for k in ("arch", "d_model", "n_layers", "n_heads", "d_ffn", "max_len") if k in d}
        if "arch" not in known:
            raise ValueError(f"model '{name}': missing 'arch' (one of {sorted(FAMILIES)})")
        if known["arch"] not in FAMILIES:
            raise ValueError(f"model '{name}': unknown arch '{known['arch']}' (one of {sorted(FAMILIES)})")
        # No edit_params: a base model's own jobs (pre-training, self-sampling) edit nothing.
        return cls(name=name, edit_params=tuple(d.get("edit_params", ())), extra=dict(d.get("extra", {})), **known)


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
    # None: train all ``steps`` (every tiny model: one budget for every seed). A number: stop at the first check
    # where the training facts' accuracy reaches it, which lands each seed at another point of the learning curve.
    target_acc: float | None = None
    warmup: int = 100
    # Fraction of each batch from the world's fact sentences (every fact, dev included), the rest task examples
    # of train facts: seq2seq and binary models only, where it is how they learn the dev facts (0: task only).
    text_mix: float = 0.0
    # BERT: weight of the masked-LM loss beside the claim loss. At 1 the MLM gradient dominates (clipped jointly)
    # and the classifier stayed at chance for 2000+ steps; 0.1-0.3 lets both learn.
    mlm_weight: float = 1.0


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
    # Locality examples per validation edit; None: n_loc. More than training's n_loc makes the validation
    # drawdown the checkpoint budget reads less noisy without changing what training sees.
    n_val_loc: int | None = None
    patience: int = 2000
    seed: int = 0
    # "independent": every step draws its edits afresh; "epoch": the release's order, a permutation per epoch.
    sampling: str = "independent"
    # The validation drawdown a kept checkpoint may cost ({"accuracy": absolute, "perplexity": fraction of the
    # original model's}): the checkpoint kept is the lowest-validation-loss one among those within it, or, when
    # none is, the lowest-loss one overall. None: the lowest-loss one (as released). Early stopping reads the loss.
    checkpoint_budget: dict | None = None


@dataclass(frozen=True)
class EvalConfig:
    n_edits: int = 100  # edits evaluated (batches of k count k each)
    k: int = 1
    n_loc: int = 4  # locality examples scored before and after each edit
    seed: int = 0
    edit_batch: int = 1  # at k = 1, independent FT/FT+KL/FT+L edits applied side by side


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
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict) -> Experiment:
        """The typed experiment of a mapping :func:`resolve_experiment` returned (or its JSON, read back)."""
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


# ----------------------------------------------------------------------------------------------------------------
# Resolution: config + task + model + editor -> the experiment of one job

BATCHED = re.compile(r"(?P<base>.+)-k(?P<k>\d+)")


def table5_batches(config: dict) -> dict[int, dict]:
    """k -> the training overrides of Table 5's editors trained with k edits per step (k > 1)."""
    t = config["tables"].get("table5", {})
    return {b["k"]: b.get("train", {}) for b in t.get("batches", []) if b["k"] > 1}


# Table 5 at matched scale (docs/method.md): the paper's k edits at once on BART-base's edited matrices (768 wide)
# stand for ceil(k · d / 768) edits on a model whose edited matrices are d wide (d = d_model, their rank capacity).
ROUNDINGS = ("ceil", "half_up")


def scale_k(k: int, width: int, paper_width: int, rounding: str = "ceil") -> int:
    """The batch size that loads a ``width``-wide edited matrix as k edits load a ``paper_width``-wide one:
    k · width / paper_width rounded up (``ceil``) or to the nearest integer, halves up (``half_up``); at least 1."""
    if k < 1 or width < 1 or paper_width < 1:
        raise ValueError(f"k, width and paper_width must be positive, got {k}, {width}, {paper_width}")
    num = k * width  # integer arithmetic: no float rounding at exact halves or whole numbers
    if rounding == "ceil":
        scaled = -(-num // paper_width)
    elif rounding == "half_up":
        scaled = (2 * num + paper_width) // (2 * paper_width)
    else:
        raise ValueError(f"rounding must be one of {list(ROUNDINGS)}, got {rounding!r}")
    return max(1, scaled)


@dataclass(frozen=True)
class KScaling:
    """Table 5's width rule as declared (``tables.table5.k_scaling``) and checked against the model's width."""

    paper_width: int  # the paper model's edited width (BART-base: d_model 768)
    width: int  # ours: the Table 5 model's d_model
    rounding: str
    paper_k: tuple[int, ...]
    scaled_k: tuple[int, ...]  # aligned with paper_k

    @property
    def pairs(self) -> dict[int, int]:
        """paper k -> scaled k."""
        return dict(zip(self.paper_k, self.scaled_k, strict=True))

    def rule_text(self) -> str:
        """``"ceil(k · 128 / 768), at least 1"``: the rule as the captions state it."""
        op = "ceil" if self.rounding == "ceil" else "round half up"
        return f"{op}(k · {self.width} / {self.paper_width}), at least 1"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> KScaling:
        return cls(
            paper_width=int(d["paper_width"]),
            width=int(d["width"]),
            rounding=str(d.get("rounding", "ceil")),
            paper_k=tuple(int(k) for k in d["paper_k"]),
            scaled_k=tuple(int(k) for k in d["scaled_k"]),
        )


def table5_k_scaling(config: dict) -> KScaling | None:
    """Table 5's declared width rule, checked (None when the profile declares none: k is the paper's).

    The width is the ``d_model`` of the Table 5 model (every experiment's the same). Raises ValueError when the
    declared ``scaled_k`` is not what the rule gives for ``paper_k``, when the lists differ in length, or when a
    paper or scaled k is not one of ``batches`` (its editors would not be trained).
    """
    t5 = config["tables"].get("table5", {})
    spec = t5.get("k_scaling")
    if not spec:
        return None
    where = "tables.table5.k_scaling"
    widths = {config["models"][e["model"]].get("d_model") for e in t5.get("experiments", [])}
    if len(widths) != 1 or None in widths:
        raise ValueError(f"{where}: the Table 5 models must share one d_model, got {sorted(map(str, widths))}")
    paper_k, declared = list(spec["paper_k"]), list(spec["scaled_k"])
    if len(paper_k) != len(declared):
        raise ValueError(f"{where}: paper_k {paper_k} and scaled_k {declared} differ in length")
    scaling = KScaling.from_dict({**spec, "width": widths.pop()})
    want = [scale_k(k, scaling.width, scaling.paper_width, scaling.rounding) for k in paper_k]
    if want != declared:
        raise ValueError(
            f"{where}: scaled_k {declared} is not {scaling.rule_text()} of paper_k {paper_k}, which is {want}"
        )
    ks = {b["k"] for b in t5.get("batches", [])}
    missing = sorted(set(paper_k + declared) - ks)
    if missing:
        raise ValueError(f"{where}: k {missing} not in tables.table5.batches {sorted(ks)}: add a batch for each")
    return scaling


def train_lr_key(config: dict, task: str, model: str, editor: str, mapping: str = "train_lr") -> str | None:
    """The ``train_lr`` (or ``train_c_edit``) key of ``editor``, None when the grid lists none for it."""
    key = f"{task}/{model}/{editor}"
    return key if key in config.get(mapping, {}) else None


def editor_entry(config: dict, name: str) -> dict:
    """The resolved config entry of editor ``name``: a configured editor, a `variant_of` one (its base entry with
    the variant's options on top: the Table 6 ablations), or ``<editor>-k<k>``, a Table 5 editor trained and
    evaluated with k edits at once."""
    editors = config["editors"]
    if name in editors:
        e = dict(editors[name])
        base = e.pop("variant_of", None)
        if base is None:
            return e
        if base not in editors or "variant_of" in editors[base]:
            raise ValueError(f"editor '{name}': variant_of '{base}' must name a configured, non-variant editor")
        b = editor_entry(config, base)
        return {
            **b,
            **{k: v for k, v in e.items() if k != "options"},
            "options": {**b.get("options", {}), **e.get("options", {})},
        }
    m = BATCHED.fullmatch(name)
    t5 = config["tables"].get("table5", {})
    if m and m["base"] in t5.get("editors", []) and int(m["k"]) in table5_batches(config):
        k = int(m["k"])
        b = editor_entry(config, m["base"])
        return {
            **b,
            "eval": {**b.get("eval", {}), "k": k, "n_edits": t5.get("n_edits", config["eval"]["n_edits"])},
            "batch_train": {"edits_per_step": k, **table5_batches(config)[k]},
        }
    raise ValueError(
        f"editor '{name}' is not in config['editors'] ({sorted(editors)}) nor a Table 5 batched editor "
        f"(<editor>-k<k> for tables.table5 editors and batches)"
    )


def is_learned(config: dict, editor: str) -> bool:
    """Whether ``editor`` is trained before evaluation (its run directory holds ``editor.pt``)."""
    return editor_kind(editor_entry(config, editor)["kind"], editor).learned


def resolve_experiment(config: dict, task: str, model: str, editor: str = "", seed: int | str = 0) -> dict:
    """The experiment mapping one command receives: model spec, task and editor options, loop settings.

    The run's seed drives pre-training, the editor's initialisation and its training; the evaluation's edits
    (eval.seed) are the same for every seed. Precedence of the training settings, last wins: ``train``, the
    editor's ``train``, the model's ``train``, the editor's ``per_model`` budget, a Table 5 editor's k-edit
    budget, the seed, the grid's ``train_lr`` and ``train_c_edit``.
    """
    m = dict(config["models"][model])
    if m["task"] != task:
        raise ValueError(f"model '{model}' is configured for task '{m['task']}', not '{task}'")
    exp = {
        "profile": config["profile"],
        "seed": int(seed),
        "task": task,
        "model": {"name": model, **{k: v for k, v in m.items() if k not in ("task", "pretrain", "train", "eval")}},
        "pretrain": m.get("pretrain", {}),
        "task_options": config["tasks"].get(task, {}),
        "train": dict(config["train"]),
        "eval": dict(config["eval"]),
    }
    e: dict = {}
    if editor:
        e = editor_entry(config, editor)
        # Options that differ per task (ENN's c_base: 1 for FEVER/zsRE, 10 for Wikitext) override the defaults.
        options = {**e.get("options", {}), **e.get("per_task", {}).get(task, {})}
        exp.update(editor=editor, editor_kind=e["kind"], editor_options=options)
        exp["train"].update(e.get("train", {}))
        exp["eval"].update(e.get("eval", {}))
    # A model's own training budget (e.g. fewer steps for the larger stand-ins) overrides the editor's, except
    # an editor's budget for that one model (per_model) and a Table 5 editor's k-edit budget.
    exp["train"].update(m.get("train", {}))
    exp["eval"].update(m.get("eval", {}))
    if editor:
        exp["train"].update(e.get("per_model", {}).get(model, {}).get("train", {}))
        exp["train"].update(e.get("batch_train", {}))
    exp["train"]["seed"] = int(seed)
    if editor:
        # The editor's learning rate as the grid chose it (`snakemake lr_grid`; config train_lr), if listed.
        key = train_lr_key(config, task, model, editor)
        if key is not None:
            exp["train"]["lr"] = float(config["train_lr"][key])
        # Its edit weight, chosen by the same grid together with the rate (train_c_edit), if listed.
        key = train_lr_key(config, task, model, editor, "train_c_edit")
        if key is not None:
            exp["train"]["c_edit"] = float(config["train_c_edit"][key])
    return exp


# What the jobs that build or sample a base model read of its config (cli.cmd_pretrain, cli.cmd_self_sample): a
# job's params are its experiment, and Snakemake re-runs a job whose params changed, so nothing else goes in.
EDITING_ONLY_MODEL_KEYS = ("edit_params", "loc_source")
SAMPLER_TASK_OPTIONS = ("n_sample_tokens", "edit_prefix_tokens", "edit_min_words", "sample_temperature")


def base_model_experiment(config: dict, model: str, seed: int | str = 0) -> dict:
    """The experiment of a job that builds or samples the base model itself: without the editors' training and
    evaluation settings, the edited parameters, or the task options only editors read, so changing those does not
    re-run pre-training."""
    exp = resolve_experiment(config, config["models"][model]["task"], model, seed=seed)
    exp["model"] = {k: v for k, v in exp["model"].items() if k not in EDITING_ONLY_MODEL_KEYS}
    exp["task_options"] = {k: v for k, v in exp["task_options"].items() if k in SAMPLER_TASK_OPTIONS}
    return {k: v for k, v in exp.items() if k not in ("train", "eval")}


def check_editors(config: dict) -> None:
    """Every configured editor's kind and options, as each task would resolve them: the first bad one raises a
    one-line ValueError naming the editor, the key and the allowed values (the workflow calls this at DAG
    start, so a typo fails ``snakemake -n`` rather than the job)."""
    for name in config["editors"]:
        e = editor_entry(config, name)
        if "kind" not in e:
            raise ValueError(f"editor '{name}': no kind; kinds: see mendrepro.editors.registry.KINDS")
        kind = editor_kind(e["kind"], name)
        kind.parse(e.get("options", {}), name)
        for task, over in e.get("per_task", {}).items():
            kind.parse({**e.get("options", {}), **over}, name, f"per_task.{task}")
