"""A word-level tokenizer for the synthetic world (tiny profile): one id per word or punctuation mark."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from mendrepro import atomic

# Ids 0..6 in this order; models read pad/unk/cls/sep/mask/bos/eos ids from the tokenizer, not from here.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>")


def train_word_tokenizer(
    texts: Iterable[str], out_dir: str | os.PathLike[str], model_max_length: int = 512
) -> PreTrainedTokenizerFast:
    """Train a WordLevel tokenizer on `texts`, save it to `out_dir` (atomically) and return it.

    Pre-tokenisation splits on whitespace and punctuation; no decoder is set, so decoding joins tokens with
    single spaces (the synthetic world writes its text that way, so decode(encode(s)) == s). No
    post-processor: each model adds its own special tokens.
    """
    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    trainer = trainers.WordLevelTrainer(
        vocab_size=10_000_000, min_frequency=1, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    raw.train_from_iterator(texts, trainer=trainer)
    tok = wrap_tokenizer(raw, model_max_length)
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.convert_tokens_to_ids(t) != i:  # models and tests rely on these ids
            raise RuntimeError(f"special token {t!r} got id {tok.convert_tokens_to_ids(t)}, expected {i}")

    with atomic.staging_dir(out_dir) as tmp:
        tok.save_pretrained(tmp)
    return tok


def wrap_tokenizer(raw: Tokenizer, model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A `tokenizers` word-level tokenizer as a transformers tokenizer with the project's special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="<s>",
        eos_token="</s>",
        model_max_length=model_max_length,
    )


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `train_word_tokenizer`."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer at {path} (expected {path / 'tokenizer.json'}; build it first)")
    return PreTrainedTokenizerFast.from_pretrained(path)
