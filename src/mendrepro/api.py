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
import pickle
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
from mendrepro.manifest import MANIFEST, REWRITE, ManifestError, directory_sha256, read_manifest, workflow_root
from mendrepro.models import freeze, load_model

LABELS = {"SUPPORTS": True, "REFUTES": False}


class EditError(ValueError):
    """A bad request, device or run directory, in one line: which one, what is wrong, what is allowed."""


def _short(value: object, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


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
    def of(cls, x: Request | tuple | list | dict, where: str = "request") -> Request:
        """A request from a Request, a (prompt, target) pair or a mapping; anything else, a missing key, a prompt or
        target that is not text, or an empty one raises an :class:`EditError` naming ``where``."""
        if isinstance(x, Request):
            prompt, target = x.prompt, x.target
        elif isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise EditError(f"{where}: a (prompt, target) pair has 2 items, got {len(x)}: {_short(x, 60)}")
            prompt, target = x
        elif isinstance(x, dict):
            keys = ("claim", "label") if "claim" in x or "label" in x else ("prompt", "target")
            missing = [k for k in keys if k not in x]
            if missing:
                raise EditError(
                    f"{where}: missing key '{missing[0]}'; a request mapping has prompt and target (FEVER: claim and "
                    f"label), got keys {sorted(map(str, x))}"
                )
            prompt, target = x[keys[0]], x[keys[1]]
            if keys[0] == "claim" and isinstance(target, bool):
                target = "SUPPORTS" if target else "REFUTES"
        else:
            raise EditError(
                f"{where}: {_short(x)} is not a request; give a (prompt, target) pair, a Request, or a mapping with "
                f"prompt and target (FEVER: claim and label)"
            )
        for name, value in (("prompt", prompt), ("target", target)):
            if not isinstance(value, str):
                raise EditError(f"{where}: the {name} must be text (str), got {type(value).__name__} {_short(value)}")
            if not value.strip():
                raise EditError(f"{where}: empty {name}; an edit needs a prompt and the new target it should give")
        return cls(prompt, target)


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

    def requests(self, requests: Iterable[Request | tuple | dict]) -> list[Request]:
        """``requests`` checked and typed for this editor's task: one :class:`EditError` line naming the request
        for a string instead of a list, a malformed request, a FEVER claim sent to another task (or a prompt and
        target to FEVER), or a target with words the model's tokenizer cannot represent."""
        if isinstance(requests, (str, bytes, Request, tuple, dict)):
            raise EditError(
                f"edit takes a list of requests, got {type(requests).__name__} {_short(requests)}: "
                f"edit([(prompt, target)])"
            )
        out = []
        for i, r in enumerate(requests):
            where = f"request {i}"
            fever_form = isinstance(r, dict) and ("claim" in r or "label" in r)
            if fever_form and self.family != "binary":
                raise EditError(
                    f"{where}: a FEVER claim and label, but this editor edits {self.exp.task} ({self.exp.model.name}): "
                    f"give a prompt and its new target"
                )
            req = Request.of(r, where)
            if self.family == "binary":
                if req.target not in LABELS:
                    raise EditError(f"{where}: FEVER targets are labels {sorted(LABELS)}, got {_short(req.target)}")
            else:
                unknown = self.unknown_pieces(req.target)
                if unknown:
                    raise EditError(
                        f"{where}: the model's tokenizer cannot represent {', '.join(map(repr, unknown))} of the "
                        f"target {_short(req.target)} (each would be edited as {self.tok.unk_token}); use words it "
                        f"knows, e.g. an answer from the task's data"
                    )
            out.append(req)
        if not out:
            raise EditError("edit needs at least one request")
        return out

    def unknown_pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` that the tokenizer maps to its unknown token (a word-level vocabulary's unseen
        words; byte-level BPE has none)."""
        unk = self.tok.unk_token_id
        if unk is None:
            return []
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        pieces = [text[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True) if i == unk]
        return list(dict.fromkeys(pieces))

    def batch(self, requests: Sequence[Request]) -> Batch:
        """The edit batch of ``requests``, tokenised as the task's loader does (with KE's condition text)."""
        prompts, targets = [r.prompt for r in requests], [r.target for r in requests]
        max_len = self.exp.model.max_len
        if self.family == "binary":
            unknown = sorted({t for t in targets if t not in LABELS})
            if unknown:
                raise EditError(f"FEVER targets are labels {sorted(LABELS)}, got {unknown}")
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
        reqs = self.requests(requests)
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
        """Greedy answers of ``model`` (default: the pre-edit model) to a list of prompts: generated text, or FEVER's
        label."""
        if isinstance(prompts, (str, bytes)):
            raise EditError(f"answer takes a list of prompts, got the string {_short(prompts)}: answer([prompt])")
        bad = next((i for i, p in enumerate(prompts) if not isinstance(p, str)), None)
        if bad is not None:
            raise EditError(
                f"prompt {bad}: must be text (str), got {type(prompts[bad]).__name__} {_short(prompts[bad])}"
            )
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise EditError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
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


def check_device(device: str) -> str:
    """``device`` if this torch can use it; otherwise an :class:`EditError` saying which devices it has."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise EditError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EditError(f"device {device!r}: this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EditError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA GPUs (cuda:0 ...)")
    elif dev.type != "cpu":
        available = getattr(torch.backends, dev.type, None)
        if available is None or not getattr(available, "is_available", lambda: False)():
            raise EditError(f"device {device!r}: this torch cannot use {dev.type}; use cpu (or cuda on a GPU)")
    return str(device)


def load_editor(run_dir: str | Path, device: str = "cpu", check_model: bool = True) -> ModelEditor:
    """The editor of a run directory (``results/<profile>/seed<s>/<task>/<model>/<editor>``) bound to its base
    model, as evaluation built it. ``check_model``: refuse a base model whose files changed since the run."""
    run_dir = Path(run_dir)
    device = check_device(device)
    manifest = read_manifest(run_dir)
    try:
        root = workflow_root(run_dir, manifest)
        model_dir = root / manifest["base_model"]["path"]
        recorded_sha = manifest["base_model"]["sha256"]
        exp = Experiment.from_dict(manifest["experiment"])
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{run_dir / MANIFEST}: not a run manifest ({type(e).__name__}: {e}); {REWRITE}") from None
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise EditError(
            f"base model {model_dir} (the manifest's base_model.path) is not there: copy it along with the run "
            f"directory, keeping the tree below the workflow directory (results/<profile>/...)"
        )
    if check_model:
        sha = directory_sha256(model_dir)
        if sha != recorded_sha:
            raise EditError(
                f"base model {model_dir} changed since {run_dir} was written (sha256 {sha[:12]}…, the manifest says "
                f"{recorded_sha[:12]}…); to use it anyway: load_editor(..., check_model=False), or "
                f"`python -m mendrepro edit --no-check`"
            )
    torch.manual_seed(exp.seed)  # as evaluation: an editor's initialisation before its checkpoint replaces it
    model, tok = load_model(model_dir, exp.model.arch)
    freeze(model)
    files = {k: str(root / v) for k, v in manifest.get("data_files", {}).items()}
    ckpt = run_dir / manifest["checkpoint"] if manifest.get("checkpoint") else None
    try:
        editor, _ = evaluation_editor(exp, model, tok, files, ckpt, tuned=manifest.get("tuned"))
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        if ckpt is None:
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EditError(
            f"{ckpt}: not a readable editor checkpoint, e.g. truncated ({reason}); re-run its training: "
            f"`snakemake --cores all --force {ckpt}`"
        ) from None
    model.to(device)
    editor.to(device)
    return ModelEditor(editor, exp, tok, manifest, device)
