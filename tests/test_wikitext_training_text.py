"""benchmarks/wikitext_training_text.py: the training texts it builds from a tiny world's wiki.train.raw."""

from __future__ import annotations

import pytest

from benchmarks.wikitext_training_text import _articles, _wiki_world, _windows, main
from mendrepro.data.synthetic import ALMANAC_TITLE, WorldConfig, generate_world, wikitext_raw


def _words(text: str, add_special_tokens: bool = True) -> dict:
    return {"input_ids": text.split()}


def test_the_almanac_is_split_off_the_articles():
    world = generate_world(WorldConfig(n_subjects=20, n_wiki_valid=5))
    articles, almanac = _articles(wikitext_raw(world.wiki_train))
    assert almanac.startswith(f" = {ALMANAC_TITLE} = ")
    persons = [a for a in world.wiki_train if a.title != ALMANAC_TITLE]
    assert len(persons) == 15 and all(f" = {a.title} = " in articles for a in persons)
    assert all(a.paragraphs[0] in articles for a in persons) and "Almanac" not in articles


def test_a_window_starts_at_every_sentence_while_enough_tokens_remain():
    paragraph = " . ".join(f"s{i} " + " ".join(["w"] * 9) for i in range(4))  # 4 sentences of 10 words, 3 " . "
    # From s0 on 43 tokens (the " . " included), from s1 32, from s2 21, from s3 10.
    assert [w.split()[0] for w in _windows(_words, [paragraph], min_tokens=21)] == ["s0", "s1", "s2"]
    windows = _windows(_words, [paragraph], min_tokens=22)
    assert [w.split()[0] for w in windows] == ["s0", "s1"]
    assert windows[0] == paragraph and windows[1] == paragraph[paragraph.index("s1") :]


def test_a_run_without_mend_on_gpt2_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(SystemExit, match=r"wikitext_training_text: .*manifest.json: no such file"):
        main(tmp_path / "results/tiny", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", ["world", "world-wikitext", "corpus"])
def test_the_runs_wikitext_world_is_the_one_its_job_read(tmp_path, folder):
    """The world folder is the one holding the job's wiki.train.raw, whatever its name; the tokenizer is the
    Wikitext world's own when the run wrote one (world.wikitext), else the run's."""
    wiki_train = str(tmp_path / folder / "wikitext/wiki.train.raw")
    assert _wiki_world(tmp_path, wiki_train) == (tmp_path / folder, tmp_path / "tokenizer")
    (tmp_path / "tokenizer-wikitext").mkdir()
    assert _wiki_world(tmp_path, wiki_train) == (tmp_path / folder, tmp_path / "tokenizer-wikitext")
