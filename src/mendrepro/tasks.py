"""Edit requests of the three tasks: the edit example, its equivalence neighbourhood and locality examples.

Each task turns the records of its loader into :class:`EditRequest` objects the same way in both profiles:
- zsRE: x_e the question, y_e a random alternative answer; equivalence = the rephrased questions; locality =
  NQ questions with their answers.
- FEVER: x_e the claim, y_e the flipped label (or the release's coin-flip rule); equivalence = rephrased claims;
  locality = other claims with their gold labels.
- Wikitext: x_e a passage, y_e the model's own 10-token sample; equivalence = the same with a random prefix of up
  to half the passage dropped; locality = other passages, every token scored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from mendrepro.batches import (
    IGNORE,
    Batch,
    _mask,
    _pad,
    binary_batch,
    concat,
    forward,
    lm_batch,
    seq2seq_batch,
    with_condition,
)
from mendrepro.data.fever import FeverRecord
from mendrepro.data.wikitext import SelfSample
from mendrepro.data.zsre import ZsreRecord, pick_target


@dataclass
class EditRequest:
    """One edit: what the editor sees (inner), where success is judged (outer), what must not change (loc)."""

    id: str
    text: str
    target: str
    inner: Batch
    outer: Batch
    loc: Batch
    outer_texts: list[str] = field(default_factory=list)
    # What the raw per-edit line records about the request beyond its texts (FEVER: whether it flips the label).
    meta: dict = field(default_factory=dict)


def merge(requests: Sequence[EditRequest], pad_token_id: int) -> EditRequest:
    """k requests as one batched edit (all k applied at once)."""
    if len(requests) == 1:
        return requests[0]
    return EditRequest(
        id="+".join(r.id for r in requests),
        text=" || ".join(r.text for r in requests),
        target=" || ".join(r.target for r in requests),
        inner=concat([r.inner for r in requests], pad_token_id),
        outer=concat([r.outer for r in requests], pad_token_id),
        loc=concat([r.loc for r in requests], pad_token_id),
        outer_texts=[t for r in requests for t in r.outer_texts],
    )


class ZsreTask:
    family = "seq2seq"

    def __init__(self, tok, records: list[ZsreRecord], loc_pool: list[tuple[str, str]], max_len: int = 64):
        if not records or not loc_pool:
            raise ValueError("zsRE task needs at least one edit record and one NQ locality question")
        self.tok, self.records, self.loc_pool, self.max_len = tok, records, loc_pool, max_len

    def __len__(self) -> int:
        return len(self.records)

    def request(self, i: int, rng: random.Random, n_loc: int = 1, all_equiv: bool = False) -> EditRequest:
        r = self.records[i]
        target = pick_target(r, rng)
        outer_texts = list(r.rephrases) if all_equiv else [rng.choice(r.rephrases)]
        # Never the edit's own question (the release's sampler keeps locality disjoint from the edits).
        others = [x for x in self.loc_pool if x[0] != r.src] or self.loc_pool
        loc = [rng.choice(others) for _ in range(n_loc)]
        return EditRequest(
            id=r.id,
            text=r.src,
            target=target,
            # KE's condition text, as released: "{prediction} >> {new target} || {input}".
            inner=with_condition(
                seq2seq_batch(self.tok, [r.src], [target], self.max_len),
                self.tok,
                [f"{r.prediction} >> {target} || {r.src}"],
                self.max_len,
            ),
            outer=seq2seq_batch(self.tok, outer_texts, [target] * len(outer_texts), self.max_len),
            loc=seq2seq_batch(self.tok, [q for q, _ in loc], [a for _, a in loc], self.max_len),
            outer_texts=outer_texts,
        )


def _label_name(label: bool) -> str:
    return "SUPPORTS" if label else "REFUTES"


FEVER_PREDICTIONS = ("file", "model")


def with_model_predictions(records: list[FeverRecord], model, tok, max_len: int, bs: int = 128) -> list[FeverRecord]:
    """``records`` with ``prediction`` set to the base classifier's own prediction on each claim.

    The release's FEVER files carry the prediction of the very classifier it edits (De Cao et al.'s BERT), and the
    edit label keeps or flips that prediction. The tiny profile pre-trains its classifier per seed, so its
    predictions are computed here from the loaded (original) model rather than read from the world's files.
    """
    out: list[FeverRecord] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(records), bs):
            chunk = records[i : i + bs]
            batch = binary_batch(tok, [r.claim for r in chunk], [r.label for r in chunk], max_len)
            logits = forward(model, batch).reshape(-1)
            out += [
                replace(r, prediction=_label_name(bool(x > 0))) for r, x in zip(chunk, logits.tolist(), strict=True)
            ]
    model.train(was_training)
    return out


class FeverTask:
    family = "binary"

    def __init__(self, tok, records: list[FeverRecord], flip_rule: str = "always", max_len: int = 64):
        if flip_rule not in ("always", "release"):
            raise ValueError(f"fever flip_rule must be 'always' or 'release', got {flip_rule!r}")
        if len(records) < 2:
            raise ValueError("FEVER task needs at least two claims (one to edit, one for locality)")
        self.tok, self.records, self.flip_rule, self.max_len = tok, records, flip_rule, max_len

    def __len__(self) -> int:
        return len(self.records)

    @staticmethod
    def predicted(r: FeverRecord) -> bool:
        """The record's recorded prediction (the gold label when the file has none)."""
        return r.label if r.prediction is None else r.prediction == "SUPPORTS"

    def edit_label(self, r: FeverRecord, rng: random.Random) -> bool:
        """The label the edit asks for: the flipped prediction, or (release rule) a coin flip between that and
        the current prediction."""
        predicted = self.predicted(r)
        if self.flip_rule == "release" and rng.random() < 0.5:
            return predicted
        return not predicted

    def request(self, i: int, rng: random.Random, n_loc: int = 1, all_equiv: bool = False) -> EditRequest:
        r = self.records[i]
        label = self.edit_label(r, rng)
        outer_texts = list(r.rephrases) if all_equiv else [rng.choice(r.rephrases)]
        others = [j for j in rng.sample(range(len(self.records)), min(len(self.records), n_loc + 1)) if j != i]
        loc = [self.records[j] for j in others[:n_loc]]
        return EditRequest(
            id=r.id,
            text=r.claim,
            target=_label_name(label),
            inner=with_condition(
                binary_batch(self.tok, [r.claim], [label], self.max_len),
                self.tok,
                [f"{_label_name(self.predicted(r))} >> {_label_name(label)} || {r.claim}"],
                self.max_len,
            ),
            outer=binary_batch(self.tok, outer_texts, [label] * len(outer_texts), self.max_len),
            loc=binary_batch(self.tok, [x.claim for x in loc], [x.label for x in loc], self.max_len),
            outer_texts=outer_texts,
            meta={"flip": label != self.predicted(r)},
        )


def _lm_rows(rows: list[list[int]], n_target: list[int], pad: int) -> Batch:
    labels = [[IGNORE] * (len(r) - n) + r[len(r) - n :] for r, n in zip(rows, n_target, strict=True)]
    return {"input_ids": _pad(rows, pad), "attention_mask": _mask(rows), "labels": _pad(labels, IGNORE)}


class WikitextTask:
    family = "lm"

    def __init__(self, tok, samples: list[SelfSample], loc_pool: list[str], max_len: int = 128, n_equiv: int = 3):
        if not samples or not loc_pool:
            raise ValueError("Wikitext task needs self-sampled edits and locality passages")
        self.tok, self.samples, self.loc_pool, self.max_len, self.n_equiv = (
            tok,
            samples,
            loc_pool,
            max_len,
            n_equiv,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def request(self, i: int, rng: random.Random, n_loc: int = 1, all_equiv: bool = False) -> EditRequest:
        s = self.samples[i]
        ids = self.tok(s.completion, add_special_tokens=False)["input_ids"][-self.max_len :]
        n = s.n_tokens
        prompt_len = len(ids) - n
        if prompt_len < 1:
            raise ValueError(f"self-sample {i}: completion has no passage before its {n} sampled tokens")
        drops = [rng.randint(0, prompt_len // 2) for _ in range(self.n_equiv if all_equiv else 1)]
        outer_rows = [ids[d:] for d in drops]
        loc = [rng.choice(self.loc_pool) for _ in range(n_loc)]
        pad = self.tok.pad_token_id
        return EditRequest(
            id=f"wiki-{i}",
            text=self.tok.decode(ids[:prompt_len]),
            target=self.tok.decode(ids[prompt_len:]),
            # KE conditions on the edit tokens themselves for Wikitext.
            inner={
                **_lm_rows([ids], [n], pad),
                "cond_input_ids": torch.tensor([ids]),
                "cond_attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            },
            outer=_lm_rows(outer_rows, [n] * len(outer_rows), pad),
            loc=lm_batch(self.tok, loc, [None] * len(loc), self.max_len),
            outer_texts=[self.tok.decode(r[:-n]) for r in outer_rows],
        )


def sample_requests(task, rng: random.Random, k: int, n_loc: int) -> EditRequest:
    """k random requests of ``task`` merged into one batched edit (training)."""
    idx = rng.sample(range(len(task)), k) if k <= len(task) else [rng.randrange(len(task)) for _ in range(k)]
    return merge([task.request(i, rng, n_loc=n_loc) for i in idx], task.tok.pad_token_id)


SAMPLINGS = ("independent", "epoch")


class EditSampler:
    """Training edits of k requests: drawn independently at every step, or (``"epoch"``, as the release's
    EditBatchSampler) in the order of a fresh random permutation of the training split, one permutation per epoch."""

    def __init__(self, task, k: int, n_loc: int, mode: str = "independent"):
        if mode not in SAMPLINGS:
            raise ValueError(f"train.sampling must be one of {SAMPLINGS}, got {mode!r}")
        self.task, self.k, self.n_loc, self.mode = task, k, n_loc, mode
        self._queue: list[int] = []

    def __call__(self, rng: random.Random) -> EditRequest:
        if self.mode == "independent":
            return sample_requests(self.task, rng, self.k, self.n_loc)
        idx = []
        while len(idx) < self.k:
            if not self._queue:
                self._queue = list(range(len(self.task)))
                rng.shuffle(self._queue)
            idx.append(self._queue.pop())
        return merge([self.task.request(i, rng, n_loc=self.n_loc) for i in idx], self.task.tok.pad_token_id)

    def state_dict(self) -> dict:
        """Where the sampler is in its epoch (the rest of the permutation), for resumable training."""
        return {"queue": list(self._queue)}

    def load_state_dict(self, state: dict) -> None:
        self._queue = list(state["queue"])
