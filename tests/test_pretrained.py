"""Pretrained base models from a source manifest: load_model builds them like the release, offline, at micro size."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mendrepro.config import ModelSpec
from mendrepro.data.download import sha256_file
from mendrepro.models import build_model, load_model
from mendrepro.pretrained import load_from_source, write_source_manifest

ARCH_LIST = ["bart", "t5", "gpt2", "gptneo", "gptj", "bert"]
GEN = ["gpt2", "gptneo", "gptj"]
WORDS = "where was born in the city of who plays what is a an and to".split() + [f"w{i}" for i in range(20)]


def _spec(arch: str) -> ModelSpec:
    return ModelSpec(name=arch, arch=arch, edit_params=(".*",), d_model=16, n_layers=2, n_heads=2, d_ffn=24)


@pytest.fixture(scope="module")
def tok_nopad() -> PreTrainedTokenizerFast:
    """A GPT-like tokenizer: bos/eos/unk but no pad token, so [PAD] has to be added."""
    vocab = {w: i for i, w in enumerate(["[UNK]", "<s>", "</s>", *WORDS])}
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")


def _snapshot(tmp_path, arch, tok, seed=0):
    """A micro random model saved like a Hub snapshot; the in-memory model too."""
    model = build_model(_spec(arch), tok, seed=seed).eval()
    if arch == "gptj":  # GPT-J's LM head has a bias, zero at init: make it non-trivial
        with torch.no_grad():
            model.lm_head.bias.normal_()
    snap = tmp_path / f"snap-{arch}-{seed}"
    (model.bert if arch == "bert" else model).save_pretrained(snap)
    tok.save_pretrained(snap)
    return snap, model


def _manifest(tmp_path, arch, snap, **kw):
    out = tmp_path / "models" / arch
    write_source_manifest(out, name=arch, arch=arch, hub_path=snap, hub_repo=f"org/{arch}", revision="a" * 40, **kw)
    return out


def _inputs(arch, tok):
    ids = torch.tensor([tok("where was w1 born in the city")["input_ids"]])
    if arch in ("bart", "t5"):
        return {"input_ids": ids, "decoder_input_ids": ids[:, :3]}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _out(model, inputs):
    with torch.no_grad():
        y = model(**inputs)
    return y if torch.is_tensor(y) else y.logits


def _assert_same_weights(a, b, skip=()):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        if not k.startswith(skip):
            assert torch.equal(sa[k], sb[k]), k


def _save_state(tmp_path, state, name="decao.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return {"path": str(path), "sha256": sha256_file(path)}


@pytest.mark.parametrize("arch", ARCH_LIST)
def test_load_model_builds_the_snapshot_model(tmp_path, tok, arch):
    snap, ref = _snapshot(tmp_path, arch, tok)
    out = _manifest(tmp_path, arch, snap)
    assert json.loads((out / "spec.json").read_text()) == {"name": arch, "arch": arch}
    model, got_tok = load_model(out, arch)
    assert type(model) is type(ref)
    assert not model.training
    assert got_tok.get_vocab() == tok.get_vocab() and got_tok.pad_token == "[PAD]"
    # BERT's Linear head is not in a Hub snapshot: it comes from De Cao's state dict (tests below).
    skip = ("classifier.",) if arch == "bert" else ()
    _assert_same_weights(model, ref, skip)
    if arch == "bert":
        with torch.no_grad():
            model.classifier.load_state_dict(ref.classifier.state_dict())
    inputs = _inputs(arch, tok)
    assert torch.allclose(_out(model, inputs), _out(ref, inputs), atol=1e-6)


@pytest.mark.parametrize("arch", GEN)
def test_generation_models_get_a_pad_token_with_the_mean_embedding(tmp_path, tok_nopad, arch):
    snap, ref = _snapshot(tmp_path, arch, tok_nopad)
    n = len(tok_nopad)
    assert tok_nopad.pad_token is None and ref.get_input_embeddings().weight.shape[0] == n
    model, tok = load_model(_manifest(tmp_path, arch, snap, add_pad_token=True), arch)
    assert len(tok) == n + 1 and tok.pad_token == "[PAD]" and tok.pad_token_id == n
    assert model.config.pad_token_id == n and model.config.vocab_size == n + 1
    pairs = [(model.get_input_embeddings().weight, ref.get_input_embeddings().weight)]
    head, ref_head = model.get_output_embeddings(), ref.get_output_embeddings()
    assert head.weight.shape[0] == n + 1
    if arch == "gptj":  # untied LM head with a bias: its new row is the mean too
        assert head.weight is not model.get_input_embeddings().weight
        pairs += [(head.weight, ref_head.weight), (head.bias, ref_head.bias)]
    else:
        assert torch.equal(head.weight, model.get_input_embeddings().weight)
    for new, old in pairs:
        assert new.shape[0] == old.shape[0] + 1
        assert torch.equal(new[:n], old)
        assert torch.allclose(new[n], old.mean(0), atol=1e-7)
        assert not torch.allclose(new[n], torch.zeros_like(new[n]))
    # the other tokens' predictions are unchanged
    inputs = _inputs(arch, tok)
    assert torch.allclose(_out(model, inputs)[..., :n], _out(ref, inputs), atol=1e-5)


def test_pad_token_is_not_added_twice(tmp_path, tok):
    snap, ref = _snapshot(tmp_path, "gpt2", tok)  # this tokenizer already has [PAD] (id 0)
    model, got = load_model(_manifest(tmp_path, "gpt2", snap, add_pad_token=True), "gpt2")
    assert len(got) == len(tok) and got.pad_token_id == tok.pad_token_id == model.config.pad_token_id
    _assert_same_weights(model, ref)


@pytest.mark.parametrize("layout", ["decao", "release"])
def test_bert_loads_de_caos_prefixed_state_dict(tmp_path, tok, layout):
    snap, _ = _snapshot(tmp_path, "bert", tok, seed=0)
    fever = build_model(_spec("bert"), tok, seed=1).eval()  # the "fine-tuned" weights, unlike the snapshot's
    sd = fever.state_dict()
    if layout == "decao":  # De Cao's Lightning module: model (BertClassifier) → model (BertModel), classifier
        state = {("model.model." + k[5:] if k.startswith("bert.") else "model." + k): v for k, v in sd.items()}
        state["model.model.embeddings.position_ids"] = torch.arange(64)[None]  # saved by older transformers
    else:  # the MEND release's BertClassifier: model (BertModel), classifier
        state = {("model." + k[5:] if k.startswith("bert.") else k): v for k, v in sd.items()}
    assert not any(k.startswith("bert.") for k in state)
    model, _ = load_model(_manifest(tmp_path, "bert", snap, state_dict=_save_state(tmp_path, state)), "bert")
    _assert_same_weights(model, fever)
    inputs = _inputs("bert", tok)
    assert torch.allclose(_out(model, inputs), _out(fever, inputs), atol=1e-6)


def test_bert_state_dict_with_wrong_keys_names_them(tmp_path, tok):
    snap, _ = _snapshot(tmp_path, "bert", tok)
    sd = build_model(_spec("bert"), tok, seed=1).state_dict()
    state = {
        "model." + k.replace("layer.0.attention.self.query", "layer.0.atention.self.query"): v for k, v in sd.items()
    }
    state["model.head.weight"] = torch.zeros(1)
    out = _manifest(tmp_path, "bert", snap, state_dict=_save_state(tmp_path, state))
    with pytest.raises(ValueError, match="state dict keys do not match") as e:
        load_model(out, "bert")
    msg = str(e.value)
    assert "bert.encoder.layer.0.attention.self.query.weight" in msg  # missing, under the closest renaming
    assert "atention" in msg and "head.weight" in msg  # unexpected
    assert "decao.pt" in msg


@pytest.mark.parametrize("drop_tied", [False, True])
def test_bart_state_dict_with_model_prefix_loads_after_stripping(tmp_path, tok, drop_tied):
    snap, _ = _snapshot(tmp_path, "bart", tok, seed=0)
    zsre = build_model(_spec("bart"), tok, seed=1).eval()
    state = {"model." + k: v for k, v in zsre.state_dict().items()}
    if drop_tied:  # a checkpoint that saves the shared embedding once
        for k in ("model.lm_head.weight", "model.model.encoder.embed_tokens.weight"):
            state.pop(k, None)
    model, _ = load_model(_manifest(tmp_path, "bart", snap, state_dict=_save_state(tmp_path, state)), "bart")
    _assert_same_weights(model, zsre)
    inputs = _inputs("bart", tok)
    assert torch.allclose(_out(model, inputs), _out(zsre, inputs), atol=1e-6)


def test_bart_state_dict_missing_an_untied_weight_fails(tmp_path, tok):
    snap, _ = _snapshot(tmp_path, "bart", tok)
    state = {"model." + k: v for k, v in build_model(_spec("bart"), tok, seed=1).state_dict().items()}
    del state["model.model.encoder.layers.1.fc1.weight"]
    out = _manifest(tmp_path, "bart", snap, state_dict=_save_state(tmp_path, state))
    with pytest.raises(ValueError, match=r"1 missing: model\.encoder\.layers\.1\.fc1\.weight"):
        load_model(out, "bart")


def test_state_dict_checksum_is_checked(tmp_path, tok):
    snap, ref = _snapshot(tmp_path, "bart", tok)
    ref_sd = _save_state(tmp_path, ref.state_dict())
    out = _manifest(tmp_path, "bart", snap, state_dict={"path": ref_sd["path"], "sha256": "0" * 64})
    with pytest.raises(ValueError, match="sha256"):
        load_model(out, "bart")


def test_bfloat16_base_model(tmp_path, tok):
    snap, ref = _snapshot(tmp_path, "gptj", tok)
    model, _ = load_model(_manifest(tmp_path, "gptj", snap, torch_dtype="bfloat16"), "gptj")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    w = model.transformer.h[1].mlp.fc_in.weight
    assert torch.equal(w, ref.transformer.h[1].mlp.fc_in.weight.to(torch.bfloat16))


def test_manifest_format_and_errors(tmp_path, tok):
    snap, _ = _snapshot(tmp_path, "gpt2", tok)
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    tref = {"repo_id": "org/tok", "revision": "b" * 40, "path": str(tok_dir)}
    out = _manifest(tmp_path, "gpt2", snap, tokenizer=tref, add_pad_token=True)
    m = json.loads((out / "source.json").read_text())
    assert m["hub"] == {"repo_id": "org/gpt2", "revision": "a" * 40, "path": str(snap)}
    assert m["tokenizer"] == tref and m["state_dict"] is None and m["add_pad_token"] is True
    assert m["name"] == m["arch"] == "gpt2" and m["torch_dtype"] == "float32" and m["strip_prefix"] is None
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    assert load_from_source(m)[1].get_vocab() == tok.get_vocab()
    with pytest.raises(ValueError, match="arch 'bart'"):
        load_model(out, "bart")
    with pytest.raises(FileNotFoundError, match="snapshot"):
        _manifest(tmp_path, "gpt2", tmp_path / "absent")
    with pytest.raises(ValueError, match="torch_dtype"):
        _manifest(tmp_path, "gpt2", snap, torch_dtype="int8")
    with pytest.raises(ValueError, match="add_pad_token"):
        _manifest(tmp_path, "bart", snap, add_pad_token=True)


def _as_hf_cache(root, repo_id, snapshot_dir, commit="c" * 40):
    """Copy a saved model into a directory laid out like the HF hub cache (refs/main -> snapshots/<commit>)."""
    import shutil

    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(snapshot_dir, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def test_fetch_source_offline_from_the_hf_cache_with_a_hand_placed_state_dict(tmp_path, tok, monkeypatch):
    from huggingface_hub import constants as hf_constants

    from mendrepro.pretrained import fetch_source

    snap, model = _snapshot(tmp_path, "bart", tok)
    cache = tmp_path / "hf"
    _as_hf_cache(cache, "org/bart", snap)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    tuned = build_model(_spec("bart"), tok, seed=1)
    state = tmp_path / "data" / "QA_model.ckpt"
    state.parent.mkdir()
    torch.save({f"model.{k}": v for k, v in tuned.state_dict().items()}, state)
    source = {
        "repo_id": "org/bart",
        "revision": "main",
        "state_dict": {"file": str(state), "kind": "manual", "source": "the release", "sha256": sha256_file(state)},
    }
    out = tmp_path / "models" / "bart"
    fetch_source(out, name="bart", arch="bart", source=source)
    loaded, _ = load_model(out, "bart")
    _assert_same_weights(loaded, tuned)
    # A missing state dict: the error says where it goes.
    source["state_dict"]["file"] = str(tmp_path / "data" / "missing.ckpt")
    from mendrepro.data.download import DownloadError

    with pytest.raises(DownloadError, match="missing.ckpt"):
        fetch_source(tmp_path / "models" / "bart2", name="bart", arch="bart", source=source)
