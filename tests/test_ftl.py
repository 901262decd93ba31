"""FT+L (constrained fine-tuning, Zhu et al. 2020) and docs/adding-an-editor.md, whose worked example it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from test_ft import _edit_batch

from mendrepro.batches import forward
from mendrepro.editors.ft import FineTune, FTConfig
from mendrepro.editors.ftl import ConstrainedFineTune, FTLConfig
from mendrepro.editors.options import OptionError
from mendrepro.editors.registry import KINDS
from mendrepro.losses import accuracy_per_example
from mendrepro.models import edited_parameter_names

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "adding-an-editor.md"


def _setup(micro, tok):
    """Names, an edit the model does not predict yet, and the weights before."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    batch = _edit_batch(spec, tok)
    if spec.family == "binary":  # as in test_ft: ask for the label the model does not predict
        with torch.no_grad():
            model.classifier.bias.zero_()
        batch["labels"] = (forward(model, batch) <= 0).float()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    return spec, model, names, batch, before


def _max_change(new: dict, before: dict) -> float:
    return max(float((new[n] - before[n]).abs().max()) for n in new)


def test_every_edited_matrix_stays_in_the_linf_ball(micro, tok):
    spec, model, names, batch, before = _setup(micro, tok)
    eps = 1e-3
    free = FineTune(model, spec.family, names, FTConfig(lr=5e-2, max_steps=5)).edit(batch)
    new = ConstrainedFineTune(model, spec.family, names, FTLConfig(lr=5e-2, max_steps=5, eps=eps)).edit(batch)
    assert _max_change(free, before) > 10 * eps  # unconstrained, the same steps go far outside the ball
    for n in names:
        assert float((new[n] - before[n]).abs().max()) <= eps + 1e-7, n
    assert _max_change(new, before) >= 0.99 * eps  # the bound binds (else this test could not fail)


def test_with_a_huge_eps_it_is_ft_exactly(micro, tok):
    spec, model, names, batch, _ = _setup(micro, tok)
    ft = FineTune(model, spec.family, names, FTConfig(lr=5e-2, max_steps=20))
    ftl = ConstrainedFineTune(model, spec.family, names, FTLConfig(lr=5e-2, max_steps=20, eps=1e9))
    a, b = ft.edit(batch), ftl.edit(batch)
    assert ft.steps_taken == ftl.steps_taken and ft.steps_taken[0] > 0
    assert all(torch.equal(a[n], b[n]) for n in names)


def test_ftl_edits_a_micro_model_and_leaves_it_untouched(micro, tok):
    spec, model, names, batch, before = _setup(micro, tok)
    eps = 0.2  # below FT's largest change on BART and T5 at this rate (0.3, 0.4): the bound binds there
    ftl = ConstrainedFineTune(model, spec.family, names, FTLConfig(lr=1e-2, max_steps=100, eps=eps))
    new = ftl.edit(batch)
    with torch.no_grad():
        assert accuracy_per_example(spec.family, forward(model, batch, new), batch["labels"]).all()
        assert not accuracy_per_example(spec.family, forward(model, batch), batch["labels"]).all()
    assert 0 < ftl.steps_taken[-1] <= 100
    assert _max_change(new, before) <= eps + 1e-7
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize(
    "options,message",
    [
        ({"eps": 0.0}, "editor 'ftl' (kind ftl): FT+L eps must be > 0, got 0.0"),
        ({"eps": -1.0}, "option 'eps' = -1.0 is not allowed; 'eps' takes float >= 0"),
        ({"eps": "small"}, "option 'eps' = 'small' is not allowed"),
        ({"epsilon": 1e-3}, "unknown option 'epsilon'; options: edit_weight, eps, grad_clip, kl, lr, max_steps"),
        ({"kl": True}, "option 'kl' is set by the kind 'ftl', not by the config"),
    ],
)
def test_ftl_options_are_typed_and_checked(options, message):
    with pytest.raises(OptionError) as err:
        KINDS["ftl"].parse(options, "ftl")
    assert message in str(err.value)


def test_ftl_options_parse():
    cfg = KINDS["ftl"].parse({"lr": 1e-4, "max_steps": 100, "grad_clip": 100.0, "eps": 1e-3}, "ftl")
    assert cfg == FTLConfig(lr=1e-4, max_steps=100, grad_clip=100.0, eps=1e-3, kl=False)


# --------------------------------------------------------------------------------------------------------
# docs/adding-an-editor.md: its worked example is what the code does
# --------------------------------------------------------------------------------------------------------
def _doc_blocks() -> list[tuple[str, str]]:
    """(path, body) of each fenced block of the doc whose first line is ``# <path>``: an excerpt of that file."""
    blocks = re.findall(r"```\w*\n# (\S+)\n(.*?)```", DOC.read_text(), flags=re.S)
    return [(path, body) for path, body in blocks]


def test_the_doc_quotes_the_files_as_they_are():
    """Every excerpt of the worked example appears in its file: the chunks between ``...`` lines in order."""
    blocks = _doc_blocks()
    paths = {p for p, _ in blocks}
    assert {
        "src/mendrepro/editors/ftl.py",
        "src/mendrepro/editors/ft.py",
        "src/mendrepro/editors/options.py",
        "src/mendrepro/editors/registry.py",
        "config/tiny.yaml",
    } <= paths
    for path, body in blocks:
        text = (ROOT / path).read_text()
        at = 0
        for chunk in re.split(r"^\s*(?:# )?\.\.\.\n", body, flags=re.M):
            if chunk.strip():
                found = text.find(chunk, at)
                assert found >= 0, f"docs/adding-an-editor.md quotes {path}, which does not have:\n{chunk}"
                at = found + len(chunk)


def test_the_doc_names_files_that_exist():
    for path in re.findall(r"`((?:src|config|tests|docs|workflow)/[\w/.-]+\.(?:py|yaml|md|smk))`", DOC.read_text()):
        assert (ROOT / path).is_file(), path


def test_the_worked_example_is_wired_end_to_end():
    """Registry, options and config as the doc says: ftl is FT's code with a projection, FT+L is Table 4's last row
    and is not learned (no training job)."""
    entry = KINDS["ftl"]
    assert entry.editor_class() is ConstrainedFineTune and issubclass(ConstrainedFineTune, FineTune)
    assert entry.options is FTLConfig and not entry.learned
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    assert cfg["editors"]["ftl"]["kind"] == "ftl"
    assert entry.parse(cfg["editors"]["ftl"]["options"], "ftl").eps > 0
    assert cfg["tables"]["table4"]["editors"][-1] == "ftl"
    assert cfg["tables"]["table4"]["editors"][:6] == ["ft", "ftkl", "enn", "ke", "mend", "cache"]
