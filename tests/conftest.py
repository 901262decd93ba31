"""Shared fixtures: a small word-level tokenizer and micro models of each family, built in memory; the config files
read over config/tiny.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mendrepro.checks import _merge
from mendrepro.config import ModelSpec
from mendrepro.data.tokenizer import wrap_tokenizer
from mendrepro.models import build_model

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def load_config_file(name: str) -> dict:
    """A file of config/, parsed."""
    return yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8"))


# The pre-training rule the overlays' committed grids and studies were run under, before the tiny profile trained its
# base models a fixed number of steps: stop at the first check past 0.98 training accuracy, at most 8000 steps.
FORMER_PRETRAIN_RULE = {"steps": 8000, "target_acc": 0.98}


def tiny_with(overlay: str) -> dict:
    """config/tiny.yaml with ``overlay`` read over it, as `--configfile config/tiny.yaml config/<overlay>` does."""
    config = load_config_file("tiny.yaml")
    _merge(config, load_config_file(overlay))
    return config


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]
WORDS = "where was born in the city of who plays what is a an and to for on at by it he she they".split()
WORDS += [f"w{i}" for i in range(40)]


def pytest_collection_modifyitems(config, items):
    """Test files run in order of how many slow tests they hold, most first: under `make test`'s workers (one file
    per worker at a time) the micro DAG's file, about half the suite, then starts at once instead of last."""
    slow: dict = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Micro models run several times faster on one thread than with threads contending for two cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tok() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return wrap_tokenizer(t)


MICRO_SPECS = {
    "gpt2": ModelSpec(
        name="gpt2",
        arch="gpt2",
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ffn=24,
        edit_params=(r"transformer\.h\.[12]\.mlp\.(c_fc|c_proj)\.weight",),
    ),
    "bart": ModelSpec(
        name="bart",
        arch="bart",
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_ffn=24,
        edit_params=(r"model\.(encoder|decoder)\.layers\.1\.(fc1|fc2)\.weight",),
    ),
    "t5": ModelSpec(
        name="t5",
        arch="t5",
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ffn=24,
        edit_params=(
            r"encoder\.block\.[12]\.layer\.1\.DenseReluDense\.(wi_0|wo)\.weight",
            r"decoder\.block\.[12]\.layer\.2\.DenseReluDense\.(wi_0|wo)\.weight",
        ),
    ),
    "gptneo": ModelSpec(
        name="gptneo",
        arch="gptneo",
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ffn=24,
        edit_params=(r"transformer\.h\.[12]\.mlp\.(c_fc|c_proj)\.weight",),
    ),
    "gptj": ModelSpec(
        name="gptj",
        arch="gptj",
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ffn=24,
        edit_params=(r"transformer\.h\.[12]\.mlp\.(fc_in|fc_out)\.weight",),
    ),
    "bert": ModelSpec(
        name="bert",
        arch="bert",
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ffn=24,
        edit_params=(r"bert\.encoder\.layer\.[12]\.(intermediate|output)\.dense\.weight",),
    ),
}


@pytest.fixture(params=sorted(MICRO_SPECS))
def micro(request, tok):
    """(spec, model) for each family, randomly initialised and in eval mode."""
    spec = MICRO_SPECS[request.param]
    model = build_model(spec, tok, seed=0).eval()
    return spec, model
