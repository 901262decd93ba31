"""Stage the rehearsal's mirror: what ``data.mirror`` reads, for the paper profile's Table 4, with no network.

    python -m mendrepro.rehearsal.stage --config config/paper.yaml --out build/rehearsal/mirror [--small]

Everything is derived from the paper config, so the mirror holds exactly the paths its rules look up:

* ``models/<repo_id>/`` for each Table 4 model's ``source.repo_id`` (and ``source.tokenizer``): the real
  architecture's ``config.json`` at its real size (as the Hub's file has it), random weights as
  ``model.safetensors`` under the checkpoint's own key names (BERT as BertForPreTraining, ``bert.*`` + ``cls.*``;
  BART as BartModel, no prefix; distilGPT-2 as GPT2LMHeadModel), and a tokenizer in the real file format
  (:mod:`mendrepro.rehearsal.tokenizers`) trained on the synthetic world's text.
* De Cao's state dicts where ``source.state_dict.file`` points, relative to ``data.placed`` (the release's
  ``models/`` folder): plain state dicts with the release's key prefixes (FEVER ``model.model.*`` +
  ``model.classifier.*`` and the ``position_ids`` buffer older transformers saved; zsRE ``model.`` + BART's keys).
* Every ``downloads`` file of kind ``placed`` at its ``file`` path: the synthetic world's records in the release's
  layouts (zsRE/FEVER KILT jsonl, NQ json, self-samples as the release's object of columns).
* Every ``downloads`` entry of kind ``hub`` as ``datasets/<repo_id>/<its files glob>``: parquet files with a ``text``
  column (Wikitext-103 raw lines, OpenWebText documents), split over two shards so the glob matches several.

The folder is built beside ``--out`` and renamed into place; ``staged.json`` (written last) lists what it holds.
``--small`` keeps every format and vocabulary but shrinks depth and width (for tests).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mendrepro import atomic
from mendrepro.data.formats import write_json_atomic
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.wikitext import SelfSample, write_self_sample
from mendrepro.rehearsal.tokenizers import write_bert_tokenizer, write_bpe_tokenizer

log = logging.getLogger(__name__)

# The Hub's config.json of each Table 4 checkpoint (bert-base-uncased, facebook/bart-base, distilgpt2), by arch:
# the sizes, and the generation settings a loader might pick up.
REAL_CONFIGS: dict[str, dict[str, Any]] = {
    "bert": {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": 30522,
    },
    "bart": {
        "activation_dropout": 0.1,
        "activation_function": "gelu",
        "add_bias_logits": False,
        "add_final_layer_norm": False,
        "architectures": ["BartModel"],
        "attention_dropout": 0.1,
        "bos_token_id": 0,
        "classif_dropout": 0.1,
        "classifier_dropout": 0.0,
        "d_model": 768,
        "decoder_attention_heads": 12,
        "decoder_ffn_dim": 3072,
        "decoder_layerdrop": 0.0,
        "decoder_layers": 6,
        "decoder_start_token_id": 2,
        "dropout": 0.1,
        "early_stopping": True,
        "encoder_attention_heads": 12,
        "encoder_ffn_dim": 3072,
        "encoder_layerdrop": 0.0,
        "encoder_layers": 6,
        "eos_token_id": 2,
        "forced_bos_token_id": 0,
        "forced_eos_token_id": 2,
        "gradient_checkpointing": False,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "max_position_embeddings": 1024,
        "model_type": "bart",
        "no_repeat_ngram_size": 3,
        "normalize_before": False,
        "normalize_embedding": True,
        "num_beams": 4,
        "num_hidden_layers": 6,
        "pad_token_id": 1,
        "scale_embedding": False,
        "transformers_version": "4.12.0.dev0",
        "use_cache": True,
        "vocab_size": 50265,
    },
    "gpt2": {
        "_num_labels": 1,
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 6,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "torch_dtype": "float32",
        "vocab_size": 50257,
    },
}

# --small: depth and width cut, vocabularies and formats kept.
SMALL: dict[str, dict[str, Any]] = {
    "bert": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 12},
    "bart": {
        "d_model": 32,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
    },
    "gpt2": {"n_embd": 32, "n_head": 2},
}

# Which tokenizer format each arch's checkpoint ships (the real repositories' files).
BART_FRONT, BART_BACK = ("<s>", "<pad>", "</s>", "<unk>"), ("<mask>",)
GPT2_BACK = ("<|endoftext|>",)


def _write_tokenizer(arch: str, cfg: dict[str, Any], texts: Sequence[str], out: Path) -> None:
    if arch == "bert":
        write_bert_tokenizer(texts, out, cfg["vocab_size"], cfg["max_position_embeddings"])
    elif arch == "bart":
        write_bpe_tokenizer(texts, out, cfg["vocab_size"], BART_FRONT, BART_BACK)
    elif arch == "gpt2":
        write_bpe_tokenizer(texts, out, cfg["vocab_size"], (), GPT2_BACK)
    else:
        raise ValueError(f"no rehearsal tokenizer for arch {arch!r} (Table 4's are bert, bart, gpt2)")


def _checkpoint_model(arch: str, cfg: dict[str, Any]):
    """The model class the Hub checkpoint was saved from, randomly initialised at ``cfg``."""
    from transformers import BartConfig, BartModel, BertConfig, BertForPreTraining, GPT2Config, GPT2LMHeadModel

    if arch == "bert":
        return BertForPreTraining(BertConfig(**cfg))
    if arch == "bart":
        return BartModel(BartConfig(**cfg))
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(**cfg))
    raise ValueError(f"no rehearsal snapshot for arch {arch!r} (Table 4's are bert, bart, gpt2)")


def write_snapshot(arch: str, cfg: dict[str, Any], texts: Sequence[str], out: Path, seed: int) -> None:
    """A Hub-style snapshot: the Hub's config.json, random weights in model.safetensors, the tokenizer's files."""
    import torch
    from safetensors.torch import save_model

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = _checkpoint_model(arch, cfg)
    # config.json as the Hub holds it (not as this transformers version would re-serialise it).
    write_json_atomic(out / "config.json", cfg)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})  # tied weights stored once
    _write_tokenizer(arch, cfg, texts, out)


def write_tokenizer_snapshot(arch: str, cfg: dict[str, Any], texts: Sequence[str], out: Path) -> None:
    """A tokenizer-only repository (e.g. ``distilgpt2`` for a fine-tuned checkpoint): config.json and its files."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", cfg)
    _write_tokenizer(arch, cfg, texts, out)


def write_de_cao_state_dict(arch: str, cfg: dict[str, Any], out: Path, seed: int) -> None:
    """De Cao's fine-tuned checkpoint as the MEND release's data folder holds it: a plain state dict whose keys
    carry the release's prefixes (see :mod:`mendrepro.pretrained` for the renamings that read them)."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, BertConfig

    from mendrepro.models import BertClassifier

    torch.manual_seed(seed)
    if arch == "bert":  # De Cao's FEVER classifier: a Lightning module holding .model (BertModel) and .classifier
        sd = BertClassifier(BertConfig(**cfg)).state_dict()
        state = {
            ("model.model." + k[len("bert.") :] if k.startswith("bert.") else "model." + k): v for k, v in sd.items()
        }
        state["model.model.embeddings.position_ids"] = torch.arange(cfg["max_position_embeddings"])[None]
    elif arch == "bart":  # De Cao's zsRE QA model: a Lightning module holding .model (BartForConditionalGeneration)
        state = {"model." + k: v for k, v in BartForConditionalGeneration(BartConfig(**cfg)).state_dict().items()}
    else:
        raise ValueError(f"no De Cao state dict for arch {arch!r} (BERT-FEVER and BART-zsRE only)")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)


# ----------------------------------------------------------------------------------------------------------------
# data files


def _words(texts: Sequence[str]) -> list[str]:
    return sorted({w for t in texts for w in t.split() if w.isalpha()})


def self_samples(paragraphs: Sequence[str], vocab: Sequence[str], n_tokens: int, seed: int) -> list[SelfSample]:
    """The release's self-samples for the world's passages: each passage followed by ``n_tokens`` words drawn from
    the world's vocabulary (the release's continuations are distilGPT-2 samples; here any text will do)."""
    rng = random.Random(seed)
    return [SelfSample(p, p + " " + " ".join(rng.choice(vocab) for _ in range(n_tokens)), n_tokens) for p in paragraphs]


def _placed_source(key: str, world_paths: dict[str, Path]) -> Path | None:
    # The world's file of each release file, by data key (the world names NQ's dev file dev.json).
    return {
        "zsre_train": world_paths["zsre_train"],
        "zsre_dev": world_paths["zsre_dev"],
        "fever_train": world_paths["fever_train"],
        "fever_dev": world_paths["fever_dev"],
        "nq_train": world_paths["nq_train"],
        "nq_dev": world_paths["nq_dev"],
    }.get(key)


def _raw_lines(path: Path) -> list[str]:
    # Wikitext-103-raw's parquet rows are the raw file's lines, each with its newline.
    return [ln + "\n" for ln in path.read_text(encoding="utf-8").split("\n")[:-1]]


def write_parquet_shards(rows: Sequence[str], pattern: Path, n_shards: int = 2) -> list[Path]:
    """``rows`` as a ``text`` column over ``n_shards`` parquet files named by filling the ``*`` of ``pattern``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if pattern.name.count("*") != 1:
        raise ValueError(f"{pattern}: expected one '*' in the file name of a Hub dataset's files glob")
    pattern.parent.mkdir(parents=True, exist_ok=True)
    size = -(-len(rows) // n_shards)
    out = []
    for i in range(n_shards):
        path = pattern.with_name(pattern.name.replace("*", f"{i:05d}-of-{n_shards:05d}"))
        pq.write_table(pa.table({"text": list(rows[i * size : (i + 1) * size])}), path)
        out.append(path)
    return out


def _hub_rows(key: str, world_paths: dict[str, Path], world) -> list[str]:
    if key.startswith("wiki_"):
        return _raw_lines(world_paths["wiki_train" if key == "wiki_train" else "wiki_valid"])
    if key.startswith("owt_"):  # documents: the world's articles, one per row
        return [" ".join(a.paragraphs) + "\n" for a in (*world.wiki_train, *world.wiki_valid)]
    raise ValueError(f"downloads.{key}: no rehearsal rows for this Hub dataset (Wikitext and OpenWebText only)")


# ----------------------------------------------------------------------------------------------------------------
# the mirror


def _rel_to_placed(file: str, placed: str | None) -> str:
    """A path of the paper config relative to data.placed (the release's data folder), else its file name."""
    p, base = Path(file), Path(placed) if placed else None
    return str(p.relative_to(base)) if base is not None and p.is_relative_to(base) else p.name


def table_models(config: dict, tables: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(e["model"] for t in tables for e in config["tables"][t]["experiments"]))


def stage(config: dict, out: Path, *, tables: Sequence[str] = ("table4",), small: bool = False, seed: int = 0) -> dict:
    """Write the mirror of ``config`` (the paper profile) for ``tables`` into ``out``; what it holds."""
    t0 = time.time()
    with atomic.staging_dir(out) as tmp:
        staged = _stage_into(config, tmp, tables, small, seed)
        staged["seconds"] = round(time.time() - t0, 1)
        write_json_atomic(tmp / "staged.json", staged)  # last: its presence marks a complete mirror
    return staged


def _stage_into(config: dict, root: Path, tables: Sequence[str], small: bool, seed: int) -> dict:
    world = generate_world(WorldConfig(seed=seed))
    texts = all_world_texts(world)
    world_paths = write_world(world, root / ".world")
    placed = config["data"].get("placed")
    staged: dict[str, Any] = {"tables": list(tables), "small": small, "models": {}, "state_dicts": {}, "data": {}}

    for i, name in enumerate(table_models(config, tables)):
        m = config["models"][name]
        arch, source = m["arch"], m.get("source")
        if source is None:
            raise ValueError(f"models.{name} has no source: the rehearsal stages the paper profile's checkpoints")
        if arch not in REAL_CONFIGS:
            raise ValueError(f"models.{name}: arch {arch!r} has no CPU-sized rehearsal checkpoint")
        cfg = {**REAL_CONFIGS[arch], **(SMALL[arch] if small else {})}
        snap = root / "models" / source["repo_id"]
        log.info("%s: %s snapshot at %s", name, source["repo_id"], snap)
        write_snapshot(arch, cfg, texts, snap, seed + i)
        staged["models"][name] = str(snap.relative_to(root))
        if source.get("tokenizer"):
            write_tokenizer_snapshot(arch, cfg, texts, root / "models" / source["tokenizer"])
        if source.get("state_dict"):
            rel = _rel_to_placed(source["state_dict"]["file"], placed)
            write_de_cao_state_dict(arch, cfg, root / rel, seed + 100 + i)
            staged["state_dicts"][name] = rel

    n_sample = config["tasks"].get("wikitext", {}).get("n_sample_tokens", 10)
    vocab = _words(texts)
    for key, spec in config.get("downloads", {}).items():
        if spec["kind"] == "placed":
            dest = root / spec["file"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = _placed_source(key, world_paths)
            if src is not None:
                shutil.copyfile(src, dest)
            elif key.startswith("self_sample_"):
                articles = world.wiki_train if key == "self_sample_train" else world.wiki_valid
                paragraphs = [p for a in articles for p in a.paragraphs]
                write_self_sample(dest, self_samples(paragraphs, vocab, n_sample, seed))
            else:
                raise ValueError(f"downloads.{key}: no rehearsal file for this placed input")
            staged["data"][key] = spec["file"]
        elif spec["kind"] == "hub":
            pattern = root / "datasets" / spec["repo_id"] / spec["files"]
            if not any(pattern.parent.glob(pattern.name)):  # owt_train and owt_dev share their files
                write_parquet_shards(_hub_rows(key, world_paths, world), pattern)
            staged["data"][key] = str(pattern.relative_to(root))
        else:
            raise ValueError(f"downloads.{key}: unknown kind {spec['kind']!r}")
    shutil.rmtree(root / ".world")
    return staged


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mendrepro.rehearsal.stage", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="config/paper.yaml", help="the paper profile's config (default %(default)s)")
    p.add_argument("--out", required=True, help="the mirror directory to write (replaced as a whole)")
    p.add_argument("--tables", default="table4", help="comma-separated tables whose models are staged")
    p.add_argument("--small", action="store_true", help="shrink depth and width (tests); formats unchanged")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    staged = stage(config, Path(args.out), tables=args.tables.split(","), small=args.small)
    print(json.dumps(staged, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
