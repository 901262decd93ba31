"""The caching editor, the MEND paper's Appendix G baseline: remember each edit, never change a parameter.

An edit stores the frozen base model's representation of the edit input (the key) and the edit's labels. At
inference a row whose representation lies within ``threshold`` (cosine distance) of its nearest stored key is
answered with that key's target; every other row gets the base model's logits unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mendrepro.batches import IGNORE, Batch, forward
from mendrepro.editors.base import Editor
from mendrepro.editors.options import CacheConfig  # noqa: F401 (re-exported)
from mendrepro.tasks import EditRequest

#: Binary logit written for a cached answer (sigmoid(20) ≈ 1 - 2e-9).
BINARY_LOGIT = 20.0
#: Probability mass a cached answer leaves to the base model on a sequence position (keeps NLLs finite).
BASE_MASS = 0.01
#: Tuned threshold when no candidate separates equivalence from locality: the cache then answers only inputs
#: whose representation equals an edit's (float noise of re-padding is far below this).
EXACT_MATCH = 1e-6


class CacheEditor(Editor):
    """Answers inputs near a stored edit with the stored target; defers to the base model elsewhere."""

    def __init__(self, model: nn.Module, family: str, param_names: list[str], cfg: CacheConfig):
        super().__init__(model, family, param_names)
        if cfg.metric != "cosine":
            raise ValueError(f"cache metric must be 'cosine', got {cfg.metric!r}")
        if cfg.threshold is not None and cfg.threshold < 0:
            raise ValueError(f"cache threshold must be >= 0, got {cfg.threshold}")
        self.cfg = cfg
        # A buffer, not a parameter: saved in state_dict, moved by .to(), never trained. NaN = not tuned yet.
        value = math.nan if cfg.threshold is None else float(cfg.threshold)
        self.register_buffer("threshold_value", torch.tensor(value, dtype=torch.float64))

    @property
    def threshold(self) -> float:
        """The cosine-distance threshold in use; raises until it is set (config) or tuned."""
        value = float(self.threshold_value)
        if math.isnan(value):
            raise RuntimeError(
                "CacheEditor has no threshold: call tune(training requests) first, or set CacheConfig.threshold"
            )
        return value

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def represent(self, batch: Batch) -> torch.Tensor:
        """[B, d] float32: mean of the base model's last hidden state over each row's input tokens."""
        device = self._device()
        ids = batch["input_ids"].to(device)
        attn = batch["attention_mask"].to(device)
        if self.family == "seq2seq":
            hidden = self.model.get_encoder()(input_ids=ids, attention_mask=attn).last_hidden_state
            mask = attn.bool()
        elif self.family == "lm":
            hidden = self.model.transformer(input_ids=ids, attention_mask=attn).last_hidden_state
            # The input is the prompt: the unscored tokens, so the target itself does not move the key.
            mask = attn.bool() & (batch["labels"].to(device) == IGNORE)
            # A row scored on every token (a locality passage) has no prompt: represent it by its whole text.
            mask = torch.where(mask.any(-1, keepdim=True), mask, attn.bool())
        elif self.family == "binary":
            hidden = self.model.bert(input_ids=ids, attention_mask=attn).last_hidden_state
            mask = attn.bool()
        else:
            raise ValueError(f"unknown family {self.family!r}")
        m = mask.unsqueeze(-1).float()
        return (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1)

    @staticmethod
    def distances(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """[Q, K] cosine distances, in float64 so an identical input lands at ~1e-16, well under any threshold."""
        q = nn.functional.normalize(queries.double(), dim=-1)
        k = nn.functional.normalize(keys.double(), dim=-1)
        return (1 - q @ k.transpose(0, 1)).clamp(min=0)

    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        """The cache state of the edits in ``inner``: one key [k, d] and one label row per edit."""
        return {"keys": self.represent(inner), "labels": inner["labels"].detach().clone()}

    def edited_logits(self, batch: Batch, edit: dict[str, torch.Tensor]) -> torch.Tensor:
        threshold = self.threshold
        logits = forward(self.model, batch).clone()
        keys, stored = edit["keys"], edit["labels"].to(logits.device)
        dist = self.distances(self.represent(batch), keys.to(logits.device))
        nearest_dist, nearest = dist.min(-1)
        labels = batch["labels"].to(logits.device)
        for i in torch.nonzero(nearest_dist <= threshold).flatten().tolist():
            j = int(nearest[i])
            if self.family == "binary":
                logits[i] = BINARY_LOGIT if float(stored[j]) > 0.5 else -BINARY_LOGIT
            elif self.family == "seq2seq":
                # Align by position in the label sequence; only positions scored in both the row and the stored
                # target are overwritten, so a row asking for a longer target keeps base logits past the overlap.
                width = min(labels.shape[1], stored.shape[1])
                pos = torch.nonzero((labels[i, :width] != IGNORE) & (stored[j, :width] != IGNORE)).flatten()
                self._write(logits, i, pos, stored[j, pos])
            else:
                # logits[t] predicts labels[t + 1]; align the row's and the stored row's scored tokens from the end
                # (the target is the continuation), skipping a scored position 0 that no logit predicts.
                row_pos = torch.nonzero(labels[i] != IGNORE).flatten()
                row_pos = row_pos[row_pos > 0]
                tokens = stored[j][stored[j] != IGNORE]
                n = min(len(row_pos), len(tokens))
                if n:
                    self._write(logits, i, row_pos[len(row_pos) - n :] - 1, tokens[len(tokens) - n :])
        return logits

    @staticmethod
    def _write(logits: torch.Tensor, row: int, positions: torch.Tensor, tokens: torch.Tensor) -> None:
        """At ``positions`` of ``row``: the stored token with probability 1 − BASE_MASS, the rest spread as the
        base model's distribution, so the stored token is the argmax while every token keeps a finite NLL (a
        hard one-hot would make one wrong cache hit send a perplexity to infinity)."""
        if len(positions) == 0:
            return
        probs = logits[row, positions].float().softmax(-1) * BASE_MASS
        probs[torch.arange(len(positions)), tokens] += 1 - BASE_MASS
        logits[row, positions] = probs.log().to(logits.dtype)

    def tune(self, requests: Sequence[EditRequest]) -> float:
        """Pick the threshold separating equivalence from locality rows on training requests, store it, return it.

        Positives: each equivalence row's distance to its own request's nearest inner key; negatives: each
        locality row's. The score of t is (fraction of positives <= t) - (fraction of negatives <= t); the best
        candidate among the sorted distances (the smallest on ties) is moved halfway to the next larger distance,
        which keeps the training score and leaves a margin for unseen inputs. With a fixed configured threshold,
        that threshold is returned unchanged.
        """
        if self.cfg.threshold is not None:
            return self.threshold
        if not requests:
            raise ValueError("tuning the cache threshold needs at least one training request")
        pos, neg = [], []
        for r in requests:
            keys = self.represent(r.inner)
            pos.append(self.distances(self.represent(r.outer), keys).min(-1).values)
            neg.append(self.distances(self.represent(r.loc), keys).min(-1).values)
        p, q = torch.cat(pos), torch.cat(neg)
        cand = torch.cat([p, q]).unique()  # sorted
        score = (p.unsqueeze(0) <= cand.unsqueeze(1)).double().mean(1) - (
            q.unsqueeze(0) <= cand.unsqueeze(1)
        ).double().mean(1)
        best = int(score.argmax())  # first maximum: the smallest threshold of the best score
        if float(score[best]) <= 0:
            value = EXACT_MATCH
        else:
            nxt = float(cand[best + 1]) if best + 1 < len(cand) else float(cand[best])
            value = max((float(cand[best]) + nxt) / 2, EXACT_MATCH)
        self.threshold_value.fill_(value)
        return value
