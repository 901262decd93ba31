"""Base models: build the tiny stand-ins, save/load them, and select the parameters an editor may change.

Every model is addressed through a *family* (``seq2seq``, ``lm``, ``binary``) so editors and metrics never look
at the architecture; which weights are edited is a list of regular expressions in the model's config entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    GPTJConfig,
    GPTJForCausalLM,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.pytorch_utils import Conv1D

from mendrepro import atomic
from mendrepro.config import ModelSpec


class BertClassifier(nn.Module):
    """BERT encoder + Linear(hidden→1) on the pooled output: the FEVER binary classifier of the paper."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, input_ids, attention_mask=None, **_):
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return self.classifier(pooled).squeeze(-1)

    def save_pretrained(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.save_pretrained(path)
        torch.save(self.state_dict(), path / "classifier.pt")

    @classmethod
    def from_pretrained(cls, path: Path) -> BertClassifier:
        model = cls(BertConfig.from_pretrained(path))
        model.load_state_dict(torch.load(Path(path) / "classifier.pt", map_location="cpu", weights_only=True))
        return model


def _bart(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    return BartForConditionalGeneration(
        BartConfig(
            vocab_size=len(tok),
            d_model=spec.d_model,
            encoder_layers=spec.n_layers,
            decoder_layers=spec.n_layers,
            encoder_attention_heads=spec.n_heads,
            decoder_attention_heads=spec.n_heads,
            encoder_ffn_dim=spec.d_ffn,
            decoder_ffn_dim=spec.d_ffn,
            max_position_embeddings=spec.max_len,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.bos_token_id,
            forced_eos_token_id=None,
            dropout=0.0,
            attention_dropout=0.0,
        )
    )


def _t5(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    # Gated FFN (wi_0, wi_1, wo) as T5 v1.1 and the ssm-nq checkpoints; T5 starts decoding from the pad token.
    return T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tok),
            d_model=spec.d_model,
            d_kv=spec.d_model // spec.n_heads,
            d_ff=spec.d_ffn,
            num_layers=spec.n_layers,
            num_decoder_layers=spec.n_layers,
            num_heads=spec.n_heads,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            tie_word_embeddings=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
    )


def _gpt2(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_embd=spec.d_model,
            n_layer=spec.n_layers,
            n_head=spec.n_heads,
            n_inner=spec.d_ffn,
            n_positions=spec.max_len,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )


def _gptneo(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    # Alternating global and local attention layers, as GPT-Neo 2.7B; its local window (256 there) may be given
    # as ``extra: {window_size: N}``, else a quarter of the context.
    pattern = [[["global", "local"], spec.n_layers // 2]] + ([[["global"], 1]] if spec.n_layers % 2 else [])
    return GPTNeoForCausalLM(
        GPTNeoConfig(
            vocab_size=len(tok),
            max_position_embeddings=spec.max_len,
            hidden_size=spec.d_model,
            num_layers=spec.n_layers,
            attention_types=pattern,
            num_heads=spec.n_heads,
            intermediate_size=spec.d_ffn,
            window_size=int(spec.extra.get("window_size", max(spec.max_len // 4, 1))),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )


def _gptj(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    # Rotary embeddings on a quarter of each head, as GPT-J 6B (rotary_dim 64 of head size 256).
    return GPTJForCausalLM(
        GPTJConfig(
            vocab_size=len(tok),
            n_positions=spec.max_len,
            n_embd=spec.d_model,
            n_layer=spec.n_layers,
            n_head=spec.n_heads,
            rotary_dim=max(spec.d_model // spec.n_heads // 4, 2),
            n_inner=spec.d_ffn,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )


def _bert(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> nn.Module:
    return BertClassifier(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=spec.d_model,
            num_hidden_layers=spec.n_layers,
            num_attention_heads=spec.n_heads,
            intermediate_size=spec.d_ffn,
            max_position_embeddings=spec.max_len,
            pad_token_id=tok.pad_token_id,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    )


# arch -> (builder of a random model, class that loads a saved one)
ARCHS = {
    "bart": (_bart, BartForConditionalGeneration),
    "t5": (_t5, T5ForConditionalGeneration),
    "gpt2": (_gpt2, GPT2LMHeadModel),
    "gptneo": (_gptneo, GPTNeoForCausalLM),
    "gptj": (_gptj, GPTJForCausalLM),
    "bert": (_bert, BertClassifier),
}


def build_model(spec: ModelSpec, tok: PreTrainedTokenizerFast, seed: int) -> nn.Module:
    """A randomly initialised model of ``spec``'s architecture and size, over ``tok``'s vocabulary."""
    if spec.arch not in ARCHS:
        raise ValueError(f"unknown arch {spec.arch!r} (one of {sorted(ARCHS)})")
    torch.manual_seed(seed)
    return ARCHS[spec.arch][0](spec, tok)


def save_model(model: nn.Module, tok: PreTrainedTokenizerFast, spec: ModelSpec, out_dir: Path) -> None:
    """Write model, tokenizer and spec into ``out_dir`` atomically (temp dir, then rename)."""
    with atomic.staging_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "spec.json").write_text(json.dumps({"name": spec.name, "arch": spec.arch}))


def load_model(path: Path, arch: str) -> tuple[nn.Module, PreTrainedTokenizerFast]:
    """Load a saved base model and its tokenizer; a clear error when the directory is missing.

    A directory holding a ``source.json`` (paper profile, see :mod:`mendrepro.pretrained`) is built from the
    pretrained checkpoint that manifest names; otherwise it is a tiny model written by :func:`save_model`.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"base model directory {path} not found; build it with `snakemake {path}` (tiny profile) "
            "or download it (paper profile)"
        )
    if (path / "source.json").is_file():
        from mendrepro.pretrained import load_from_source  # imports this module

        return load_from_source(path / "source.json", arch=arch)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r} (one of {sorted(ARCHS)})")
    model = ARCHS[arch][1].from_pretrained(path)
    model.eval()
    return model, tok


def edited_parameter_names(model: nn.Module, patterns: tuple[str, ...]) -> list[str]:
    """Names of the parameters matching any of ``patterns`` (full match), in model order."""
    names = [n for n, _ in model.named_parameters() if any(re.fullmatch(p, n) for p in patterns)]
    if not names:
        raise ValueError(f"no parameter matches the edit patterns {list(patterns)}")
    return names


def module_of(model: nn.Module, param_name: str) -> nn.Module:
    """The module that owns parameter ``param_name``."""
    return model.get_submodule(param_name.rsplit(".", 1)[0])


def is_transposed(module: nn.Module) -> bool:
    """GPT-2's Conv1D stores its weight as (in, out) where nn.Linear stores (out, in)."""
    return isinstance(module, Conv1D)


def freeze(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model
