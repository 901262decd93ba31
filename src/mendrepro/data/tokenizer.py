"""A word-level tokenizer for the synthetic world (tiny profile): one id per word or punctuation mark."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

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

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tok.save_pretrained(tmp)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory `src` to `dst`, replacing an old `dst` (os.replace cannot overwrite a non-empty dir)."""
    if dst.exists():
        old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".old"))
        os.replace(dst, old / dst.name)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `train_word_tokenizer`."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer at {path} (expected {path / 'tokenizer.json'}; build it first)")
    return PreTrainedTokenizerFast.from_pretrained(path)
