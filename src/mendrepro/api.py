"""The Python API: load a trained editor from its run directory and edit its base model with plain text.

    from mendrepro.api import load_editor

    editor = load_editor("results/tiny/seed0/zsre/bart/mend")
    result = editor.edit([("Where was Ada Lovelace born?", "Paris")])
    result.model           # the edited model: a plain nn.Module (forward, generate); the base model is untouched
    result.edits[0]        # EditInfo: success on the prompt, seconds, peak memory
    editor.answer(["Where was Ada Lovelace born?"], result.model)

k requests make one batched edit (all k applied at once, as Table 5 evaluates them). The editor, its options and
the edit itself are the objects the pipeline evaluates (:mod:`mendrepro.build`, :func:`mendrepro.evaluate.timed_edit`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mendrepro.batches import Batch, binary_batch, forward, lm_batch, seq2seq_batch, to_device, with_condition
from mendrepro.build import evaluation_editor
from mendrepro.config import Experiment
from mendrepro.editors.base import Editor
from mendrepro.evaluate import timed_edit
from mendrepro.losses import accuracy_per_example
from mendrepro.manifest import directory_sha256, read_manifest, workflow_root
from mendrepro.models import freeze, load_model

LABELS = {"SUPPORTS": True, "REFUTES": False}


@dataclass(frozen=True)
class Request:
    """One edit in plain text: a prompt and its new target.

    zsRE: a question and its new answer. Wikitext: a passage and the continuation it should have (mind the
    tokenizer: a GPT-2 continuation usually starts with a space). FEVER: a claim and its new label, SUPPORTS or
    REFUTES (``{"claim": ..., "label": True}`` is accepted too).
    """

    prompt: str
    target: str

    @classmethod
    def of(cls, x: Request | tuple | dict) -> Request:
        if isinstance(x, Request):
            return x
        if isinstance(x, tuple):
            return cls(*x)
        if "claim" in x:
            label = x["label"]
            return cls(x["claim"], label if isinstance(label, str) else ("SUPPORTS" if label else "REFUTES"))
        return cls(x["prompt"], x["target"])


@dataclass(frozen=True)
class EditInfo:
    """What one request's edit did: success on its own prompt (the edited model's argmax equals the target on
    every target token; FEVER: the label), and the batched edit's wall time and peak memory."""

    prompt: str
    target: str
    success: float
    seconds: float
    memory: dict


@dataclass
class EditResult:
    model: nn.Module  # the edited model
    edits: list[EditInfo]
    state: dict[str, torch.Tensor]  # what Editor.edit returned: new parameter values (the cache: its keys, labels)


class CachedModel(nn.Module):
    """The cache's edited model: the base model's answers, except for inputs near a stored edit, answered with its
    target. The cache never changes a parameter, so this wraps the base model instead of copying it."""

    def __init__(self, editor: Editor, state: dict[str, torch.Tensor], pad_token_id: int):
        super().__init__()
        self.editor, self.state, self.pad_token_id = editor, state, pad_token_id
        self.config = editor.model.config

    def forward(self, input_ids, attention_mask=None, labels=None, **_) -> torch.Tensor:
        """Logits of the edited model (the cache needs a language model's labels to tell prompt from target:
        without them the whole input is the prompt)."""
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        if labels is None:
            labels = torch.full_like(input_ids, -100)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        return self.editor.edited_logits(batch, self.state)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, **kwargs) -> torch.Tensor:
        """Rows near a stored edit get its target; the others what the base model generates."""
        ed = self.editor
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": torch.full_like(input_ids, -100)}
        dist = ed.distances(ed.represent(batch), self.state["keys"].to(input_ids.device))
        nearest_dist, nearest = dist.min(-1)
        base = ed.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        rows = []
        for i in range(input_ids.shape[0]):
            if float(nearest_dist[i]) > ed.threshold:
                rows.append(base[i].tolist())
                continue
            stored = self.state["labels"][int(nearest[i])]
            target = stored[stored != -100].tolist()
            start = [ed.model.config.decoder_start_token_id] if ed.family == "seq2seq" else input_ids[i].tolist()
            rows.append(start + target)
        width = max(len(r) for r in rows)
        return torch.tensor([r + [self.pad_token_id] * (width - len(r)) for r in rows], device=input_ids.device)


def edited_model(editor: Editor, new: dict[str, torch.Tensor], pad_token_id: int) -> nn.Module:
    """An ordinary module of the edited model: a copy of the base model with ``new``'s parameter values (the
    original keeps its own); for an editor that answers from its own state (the cache), a wrapper."""
    params = dict(editor.model.named_parameters())
    if not set(new) <= set(params):
        return CachedModel(editor, new, pad_token_id)
    model = copy.deepcopy(editor.model)
    with torch.no_grad():
        for name, value in new.items():
            model.get_parameter(name).copy_(value)
    return model


@dataclass
class ModelEditor:
    """A trained editor bound to its base model and tokenizer, as loaded from a run directory."""

    editor: Editor
    exp: Experiment
    tok: object
    manifest: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def model(self) -> nn.Module:
        """The base model (never changed by an edit)."""
        return self.editor.model

    @property
    def family(self) -> str:
        return self.exp.model.family

    def pre_edit_model(self) -> nn.Module:
        """The model an edit starts from: the base model, or ENN's meta-trained copy of it."""
        if self.editor.changes_base_model:
            return edited_model(self.editor, self.editor.base_params(), self.tok.pad_token_id)
        return self.model

    def batch(self, requests: Sequence[Request]) -> Batch:
        """The edit batch of ``requests``, tokenised as the task's loader does (with KE's condition text)."""
        prompts, targets = [r.prompt for r in requests], [r.target for r in requests]
        max_len = self.exp.model.max_len
        if self.family == "binary":
            unknown = sorted({t for t in targets if t not in LABELS})
            if unknown:
                raise ValueError(f"FEVER targets are labels {sorted(LABELS)}, got {unknown}")
            before = self.answer(prompts)
            batch = binary_batch(self.tok, prompts, [LABELS[t] for t in targets], max_len)
            cond = [f"{b} >> {t} || {p}" for b, t, p in zip(before, targets, prompts, strict=True)]
            return with_condition(batch, self.tok, cond, max_len)
        if self.family == "seq2seq":
            before = self.answer(prompts)
            batch = seq2seq_batch(self.tok, prompts, targets, max_len)
            cond = [f"{b} >> {t} || {p}" for b, t, p in zip(before, targets, prompts, strict=True)]
            return with_condition(batch, self.tok, cond, max_len)
        # Language models: KE conditions on the edit's own tokens, as for the Wikitext edits.
        batch = lm_batch(self.tok, prompts, targets, max_len)
        return {**batch, "cond_input_ids": batch["input_ids"], "cond_attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def edit(self, requests: Iterable[Request | tuple | dict]) -> EditResult:
        """Apply every request at once (one batched edit); the edited model and what each edit did."""
        reqs = [Request.of(r) for r in requests]
        if not reqs:
            raise ValueError("edit needs at least one request")
        self.editor.eval()
        inner = to_device(self.batch(reqs), self.device)
        new, seconds, mem = timed_edit(self.editor, inner, self.device)
        success = accuracy_per_example(self.family, self.editor.edited_logits(inner, new), inner["labels"])
        infos = [
            EditInfo(r.prompt, r.target, float(s), seconds, mem) for r, s in zip(reqs, success.tolist(), strict=True)
        ]
        return EditResult(edited_model(self.editor, new, self.tok.pad_token_id), infos, new)

    @torch.no_grad()
    def answer(self, prompts: Sequence[str], model: nn.Module | None = None, max_new_tokens: int = 10) -> list[str]:
        """Greedy answers of ``model`` (default: the pre-edit model): generated text, or FEVER's label."""
        model = self.pre_edit_model() if model is None else model
        model.eval()
        out = []
        for p in prompts:  # one at a time: no padding side to get right for left-to-right models
            if self.family == "binary":
                b = to_device(binary_batch(self.tok, [p], [0], self.exp.model.max_len), self.device)
                logit = forward(model, b) if not isinstance(model, CachedModel) else model(**b)
                out.append("SUPPORTS" if float(logit.reshape(-1)[0]) > 0 else "REFUTES")
                continue
            if self.family == "seq2seq":
                b = seq2seq_batch(self.tok, [p], [""], self.exp.model.max_len)
            else:
                b = lm_batch(self.tok, [p], [None], self.exp.model.max_len)
            ids, mask = b["input_ids"].to(self.device), b["attention_mask"].to(self.device)
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tok.pad_token_id,
            )
            new_tokens = gen[0] if self.family == "seq2seq" else gen[0, ids.shape[1] :]
            out.append(self.tok.decode(new_tokens, skip_special_tokens=True).strip())
        return out


def load_editor(run_dir: str | Path, device: str = "cpu", check_model: bool = True) -> ModelEditor:
    """The editor of a run directory (``results/<profile>/seed<s>/<task>/<model>/<editor>``) bound to its base
    model, as evaluation built it. ``check_model``: refuse a base model whose files changed since the run."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    root = workflow_root(run_dir, manifest)
    model_dir = root / manifest["base_model"]["path"]
    if check_model:
        sha = directory_sha256(model_dir)
        if sha != manifest["base_model"]["sha256"]:
            raise ValueError(
                f"base model {model_dir} changed since {run_dir} was written (sha256 {sha[:12]}…, the manifest says "
                f"{manifest['base_model']['sha256'][:12]}…); load with check_model=False to use it anyway"
            )
    exp = Experiment.from_dict(manifest["experiment"])
    torch.manual_seed(exp.seed)  # as evaluation: an editor's initialisation before its checkpoint replaces it
    model, tok = load_model(model_dir, exp.model.arch)
    freeze(model)
    files = {k: str(root / v) for k, v in manifest.get("data_files", {}).items()}
    ckpt = run_dir / manifest["checkpoint"] if manifest.get("checkpoint") else None
    editor, _ = evaluation_editor(exp, model, tok, files, ckpt, tuned=manifest.get("tuned"))
    model.to(device)
    editor.to(device)
    return ModelEditor(editor, exp, tok, manifest, device)
