"""KE: KnowledgeEditor (De Cao et al., EMNLP 2021), as released, as an :class:`Editor`.

A condition encoder (a trainable copy of the base model's input embeddings, a 1-layer biLSTM, Linear + tanh)
maps the condition text of an edit to a vector c. For each edited matrix W of stored shape (d0, d1), a
weight-normalised MLP head maps c to (cola ∈ R^{d1}, rowa ∈ R^{d0}, colb ∈ R^{d1}, rowb ∈ R^{d0}, norm ∈ R) and

    a = softmax(rowa) colaᵀ,  b = softmax(rowb) colbᵀ  (rank-1, d0 × d1),
    ΔW = σ(norm) · (∇W ⊙ a + b),  W̃ = W + ΔW,

where ∇W is the (detached, first-order) gradient of the edit loss w.r.t. the stored weight.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.rnn import pack_padded_sequence

from mendrepro.batches import Batch
from mendrepro.editors.base import Editor, capture_edit_gradients, param_key
from mendrepro.editors.options import KEConfig  # noqa: F401 (re-exported)

COND_KEYS = ("cond_input_ids", "cond_attention_mask")


def input_embedding_matrix(model: nn.Module) -> torch.Tensor:
    """The base model's input embedding matrix [vocab, dim].

    Wrappers without ``get_input_embeddings`` (our BERT classifier) are searched for the first submodule that has it.
    """
    for module in model.modules():
        get = getattr(module, "get_input_embeddings", None)
        if callable(get):
            emb = get()
            if emb is not None:
                return emb.weight
    raise ValueError(f"{type(model).__name__} has no input embeddings for KE's condition encoder")


class ConditionEncoder(nn.Module):
    """Condition tokens [k, L] (+ mask) ↦ condition vectors [k, cond_dim]."""

    def __init__(self, embedding: torch.Tensor, cfg: KEConfig):
        super().__init__()
        # A copy, so training the encoder never touches (or aliases) the frozen base model's embeddings.
        self.embedding = nn.Embedding.from_pretrained(embedding.detach().clone().float(), freeze=False)
        self.lstm = nn.LSTM(embedding.shape[1], cfg.lstm_hidden, num_layers=1, bidirectional=True, batch_first=True)
        self.proj = nn.Linear(2 * cfg.lstm_hidden, cfg.cond_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        # As released (AllenNLP's Seq2Vec wrapper): the concatenated final states of the two directions, which
        # packing makes the states at each sequence's last real token (forward) and first token (backward).
        final = torch.cat([h_n[0], h_n[1]], dim=-1)
        return torch.tanh(self.proj(final))


class RankOneHead(nn.Module):
    """Condition vector ↦ (a, b, gate) for one edited matrix of stored shape (d0, d1)."""

    def __init__(self, shape: tuple[int, int], cfg: KEConfig):
        super().__init__()
        self.d0, self.d1 = shape
        self.net = nn.Sequential(
            weight_norm(nn.Linear(cfg.cond_dim, cfg.head_hidden)),
            nn.Tanh(),
            weight_norm(nn.Linear(cfg.head_hidden, 2 * (self.d0 + self.d1) + 1)),
        )

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``cond`` [cond_dim] ↦ a [d0, d1], b [d0, d1], gate σ(norm) (a scalar)."""
        d0, d1 = self.d0, self.d1
        cola, rowa, colb, rowb, norm = self.net(cond).split([d1, d0, d1, d0, 1], dim=-1)
        a = rowa.softmax(-1)[:, None] * cola[None, :]
        b = rowb.softmax(-1)[:, None] * colb[None, :]
        return a, b, torch.sigmoid(norm).squeeze(-1)

    def delta(self, grad: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """ΔW = σ(norm) · (∇W ⊙ a + b)."""
        a, b, gate = self(cond)
        return gate * (grad * a + b)


class KnowledgeEditor(Editor):
    """KE over the edited matrices of one base model; trainable parameters are the encoder and the heads only."""

    def __init__(self, model: nn.Module, family: str, param_names: list[str], cfg: KEConfig):
        super().__init__(model, family, param_names)
        self.cfg = cfg
        self.encoder = ConditionEncoder(input_embedding_matrix(model), cfg)
        named = dict(model.named_parameters())
        # Heads work in the stored layout (GPT-2 Conv1D (in, out), nn.Linear (out, in)), the layout of ∇W.
        self.heads = nn.ModuleDict({param_key(n): RankOneHead(tuple(named[n].shape), cfg) for n in self.param_names})

    def head(self, name: str) -> RankOneHead:
        return self.heads[param_key(name)]

    def condition(self, inner: Batch) -> torch.Tensor:
        """The condition vector [cond_dim] of a batch of k edits: the mean of the k encoded conditions.

        ∇W is a single gradient of the whole batch, so the k edits share one ΔW = σ(norm)(∇W ⊙ a + b); averaging
        the condition vectors (rather than summing k gated copies of the same ∇W) keeps the update of a batch on
        the scale of a single edit's, and equals the release's (batch-size-1) update when k = 1.
        """
        missing = [k for k in COND_KEYS if k not in inner]
        if missing:
            raise ValueError(
                f"KE needs the edit's condition text in the batch: missing key {missing[0]!r} "
                "(build batches with mendrepro.batches.with_condition)"
            )
        return self.encoder(inner["cond_input_ids"], inner["cond_attention_mask"]).mean(0)

    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        cond = self.condition(inner)
        grads = capture_edit_gradients(self.model, self.family, self.param_names, inner).grads
        base = self.base_params()
        out = {}
        for n in self.param_names:
            delta = self.head(n).delta(grads[n].float(), cond)
            # The base weight is detached: only the editor learns, the base model never receives a gradient.
            out[n] = base[n].detach() + delta.to(base[n].dtype)
        return out
