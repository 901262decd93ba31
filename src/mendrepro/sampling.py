"""The Wikitext edit targets: the base language model's own 10-token continuation of each passage."""

from __future__ import annotations

import torch
from tqdm import tqdm

from mendrepro.data.wikitext import SelfSample


@torch.no_grad()
def self_sample(
    model, tok, passages: list[str], n_tokens: int, prefix_tokens: int, seed: int, temperature: float = 1.0
) -> list[SelfSample]:
    """For each passage, keep its first ``prefix_tokens`` tokens and sample ``n_tokens`` more from ``model``.

    Special tokens are banned from the sample so the completion round-trips through the tokenizer exactly.
    ``temperature`` 1 samples the model's own distribution, as the release's edits were drawn; above 1 the targets
    are harder for the model to produce (a study's knob, docs/results.md).
    """
    torch.manual_seed(seed)
    model.eval()
    banned = [[i] for i in tok.all_special_ids]
    out = []
    for text in tqdm(passages, desc="self-sample", mininterval=5):
        ids = tok(text, add_special_tokens=False)["input_ids"][:prefix_tokens]
        x = torch.tensor([ids])
        gen = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=True,
            top_k=0,
            temperature=temperature,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            bad_words_ids=banned,
            pad_token_id=tok.pad_token_id,
        )
        original = tok.decode(ids)
        out.append(SelfSample(original=original, completion=tok.decode(gen[0].tolist()), n_tokens=n_tokens))
    return out
