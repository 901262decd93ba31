"""Tokenizers in the real Table 4 models' file formats, trained on the synthetic world's text, at the real sizes.

The paper profile loads a tokenizer with ``AutoTokenizer.from_pretrained(snapshot)``; what it finds there decides the
code path. So the rehearsal's snapshots hold what the Hub's repositories hold:

* BERT (``bert-base-uncased``): a WordPiece ``vocab.txt`` (lower-cased), ``[PAD]`` = 0, ``[UNK]``/``[CLS]``/``[SEP]``
  /``[MASK]`` = 100-103 between ``[unusedN]`` rows, 30,522 entries.
* BART (``facebook/bart-base``) and GPT-2 (``distilgpt2``): byte-level BPE ``vocab.json`` + ``merges.txt``; BART's
  ``<s> <pad> </s> <unk>`` = 0-3 and ``<mask>`` last (50,265 entries), GPT-2's ``<|endoftext|>`` last (50,257).

The world's text yields far fewer tokens than the real vocabularies; the rest are filler entries no input produces
(``[unusedN]`` as BERT's own, ``<unusedN>`` in the BPE vocabularies, reached by no merge), so that embedding
matrices, the LM head's softmax and the ``[PAD]`` resize of GPT-2 have the real shapes.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, normalizers, pre_tokenizers, trainers

from mendrepro import atomic

BERT_SPECIALS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
BERT_FIRST_FREE = 999  # bert-base-uncased: ids 1-99 and 104-998 are [unused0] ... [unused993]


def _filler(prefix: str, taken: set[str]):
    """Unused entries ``<prefix><i>`` (i = 0, 1, ...) that no learned token spells."""
    i = 0
    while True:
        name = prefix.format(i)
        if name not in taken:
            yield name
        i += 1


def bert_vocab(texts: Sequence[str], size: int = 30522) -> list[str]:
    """A WordPiece vocabulary of ``size`` entries in bert-base-uncased's layout, learned on ``texts``."""
    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    free = size - BERT_FIRST_FREE
    raw.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=free, show_progress=False))
    learned = [t for t, _ in sorted(raw.get_vocab().items(), key=lambda kv: kv[1]) if t not in BERT_SPECIALS]
    if len(learned) > free:
        raise ValueError(f"the text yields {len(learned)} WordPiece tokens, more than the {free} free ids")
    vocab: list[str | None] = [None] * size
    for t, i in BERT_SPECIALS.items():
        vocab[i] = t
    # [unusedN] numbered in id order, as in bert-base-uncased (ids 1-99, 104-998, then the rows the text left).
    unused = _filler("[unused{}]", set(learned))
    for i in range(1, BERT_FIRST_FREE):
        if vocab[i] is None:
            vocab[i] = next(unused)
    vocab[BERT_FIRST_FREE : BERT_FIRST_FREE + len(learned)] = learned
    for i in range(BERT_FIRST_FREE + len(learned), size):
        vocab[i] = next(unused)
    return vocab  # type: ignore[return-value]


def write_bert_tokenizer(texts: Sequence[str], out_dir: Path, size: int = 30522, max_len: int = 512) -> None:
    """``vocab.txt`` and ``tokenizer_config.json`` as in bert-base-uncased."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "vocab.txt", "".join(t + "\n" for t in bert_vocab(texts, size)))
    atomic.write_text(
        out_dir / "tokenizer_config.json", json.dumps({"do_lower_case": True, "model_max_length": max_len})
    )


def bpe_files(
    texts: Sequence[str], size: int, front: Sequence[str], back: Sequence[str]
) -> tuple[dict[str, int], list[str]]:
    """(vocab.json, merges) of a byte-level BPE of ``size`` entries: ``front`` specials, the 256 byte symbols and the
    merges learned on ``texts``, filler, ``back`` specials."""
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    free = size - len(front) - len(back)
    bpe.train_from_iterator(texts, vocab_size=free, min_frequency=2, show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = bpe.save_model(tmp)
        learned = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
        lines = Path(merges_file).read_text(encoding="utf-8").splitlines()
    merges = [ln for ln in lines if ln and not ln.startswith("#version")]
    tokens = [t for t, _ in sorted(learned.items(), key=lambda kv: kv[1])]
    if len(tokens) > free:
        raise ValueError(f"the text yields {len(tokens)} BPE tokens, more than the {free} free ids")
    filler = _filler("<unused{}>", set(tokens) | set(front) | set(back))
    ordered = [*front, *tokens, *(next(filler) for _ in range(free - len(tokens))), *back]
    return {t: i for i, t in enumerate(ordered)}, merges


def write_bpe_tokenizer(
    texts: Sequence[str], out_dir: Path, size: int, front: Sequence[str] = (), back: Sequence[str] = ()
) -> None:
    """``vocab.json`` and ``merges.txt`` (GPT-2's ``#version: 0.2`` header) as in facebook/bart-base and distilgpt2."""
    vocab, merges = bpe_files(texts, size, front, back)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    atomic.write_text(out_dir / "merges.txt", "#version: 0.2\n" + "".join(m + "\n" for m in merges))
