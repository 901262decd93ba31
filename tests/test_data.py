"""Tests of the data layer: the synthetic world, the real-format loaders, the tokenizer and the writers."""

from __future__ import annotations

import json
import pickle
import random
import re
import time
from pathlib import Path

import pytest

from mendrepro.batches import _ids_many
from mendrepro.data.fever import FeverRecord, load_fever
from mendrepro.data.formats import (
    DataFormatError,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)
from mendrepro.data.nq import load_nq
from mendrepro.data.synthetic import (
    MASK,
    NQ_RELATIONS,
    OBJECT_TYPES,
    RELATIONS,
    RELATIONS_BY_NAME,
    WORLD_FILES,
    WorldConfig,
    all_world_texts,
    generate_world,
    write_world,
)
from mendrepro.data.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_word_tokenizer
from mendrepro.data.wikitext import SelfSample, load_self_sample, load_wikitext_raw, write_self_sample
from mendrepro.data.zsre import ZsreRecord, load_zsre, pick_target

SMALL = WorldConfig(seed=3, n_subjects=30, n_objects_per_type=10, n_dev_facts=20, n_wiki_valid=5)
_TOKEN_RE = re.compile(r"\w+|[^\w\s]+")


@pytest.fixture(scope="module")
def world():
    return generate_world(WorldConfig())


@pytest.fixture(scope="module")
def world_files(world, tmp_path_factory):
    return write_world(world, tmp_path_factory.mktemp("world"))


def _read_all(paths: dict[str, Path]) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in paths.items()}


# ---------------------------------------------------------------------------------------------------------
# The synthetic world


def test_generation_is_fast_and_writes_the_layout(tmp_path):
    start = time.perf_counter()
    paths = write_world(generate_world(WorldConfig()), tmp_path)
    assert time.perf_counter() - start < 2.0
    assert set(paths) == set(WORLD_FILES)
    for name, rel in WORLD_FILES.items():
        assert paths[name] == tmp_path / rel and paths[name].is_file()


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a = _read_all(write_world(generate_world(SMALL), tmp_path / "a"))
    b = _read_all(write_world(generate_world(SMALL), tmp_path / "b"))
    c = _read_all(write_world(generate_world(WorldConfig(**{**SMALL.__dict__, "seed": 4})), tmp_path / "c"))
    assert a == b
    assert all(a[k] != c[k] for k in a)


def test_relations_and_templates():
    assert len(RELATIONS) >= 6
    for r in RELATIONS:
        assert len(r.questions) >= 5 and len(set(r.questions)) == len(r.questions)
        assert len(r.claims) >= 5 and len(set(r.claims)) == len(r.claims)
        assert len(r.statements) >= 1
        assert all("{s}" in t for t in r.questions)
        assert all("{s}" in t and "{o}" in t for t in (*r.claims, *r.statements))
        assert r.subject_type == "person"
    assert len(NQ_RELATIONS) >= 3
    assert not {r.name for r in NQ_RELATIONS} & {r.name for r in RELATIONS}
    for r in NQ_RELATIONS:
        assert len(r.questions) >= 5 and len(set(r.questions)) == len(r.questions)
        assert r.claims == () and len(r.statements) >= 1  # no FEVER claims; almanac sentences
        assert all("{s}" in t for t in r.questions)
        assert all("{s}" in t and "{o}" in t for t in r.statements)
        assert r.subject_type in OBJECT_TYPES and r.object_type in OBJECT_TYPES
    # No NQ question template is a zsRE (person) question template.
    assert not {t for r in NQ_RELATIONS for t in r.questions} & {t for r in RELATIONS for t in r.questions}


def test_entities_unique_and_some_multiword(world):
    names = list(world.subjects) + [n for v in world.objects.values() for n in v]
    assert len(names) == len(set(names)) == 200 + 6 * 24
    assert any(" " in n for v in world.objects.values() for n in v)
    for f in world.facts:
        assert f.object in world.objects[RELATIONS_BY_NAME[f.relation].object_type]
        assert f.object not in f.alternatives and f.wrong_object != f.object
        assert 4 <= len(f.alternatives) <= 6


def test_splits_disjoint_and_sized(world):
    cfg = world.config
    train, dev, nq = (set(world.splits[k]) for k in ("train", "dev", "nq"))
    n_person, n_nq = 200 * len(RELATIONS), 24 * len(NQ_RELATIONS)
    assert len(dev) == cfg.n_dev_facts and len(train) == n_person - cfg.n_dev_facts and len(nq) == n_nq
    assert not (train & dev) and not (train & nq) and not (dev & nq)
    assert train | dev | nq == set(range(len(world.facts))) and len(world.facts) == n_person + n_nq
    keys = {(f.subject, f.relation) for f in world.facts}
    assert len(keys) == len(world.facts)  # one fact per (subject, relation)
    for f in world.facts:
        assert f.split == ("nq" if f.id in nq else "dev" if f.id in dev else "train")


def test_zsre_facts_are_person_facts_nq_facts_are_not(world):
    persons = set(world.subjects)
    person_relations = {r.name for r in RELATIONS}
    for f in world.split_facts("train") + world.split_facts("dev"):
        assert f.subject_type == "person" and f.subject in persons and f.relation in person_relations
        assert world.subjects[f.subject_id] == f.subject
    nq_facts = world.split_facts("nq")
    # Every (subject, NQ relation) pair is an NQ fact: all of them are used.
    assert {(f.subject, f.relation) for f in nq_facts} == {
        (s, r.name) for r in NQ_RELATIONS for s in world.objects[r.subject_type]
    }
    for f in nq_facts:
        r = RELATIONS_BY_NAME[f.relation]
        assert r in NQ_RELATIONS and f.subject_type == r.subject_type != "person"
        assert f.subject not in persons and world.objects[f.subject_type][f.subject_id] == f.subject
    capitals = [f.object for f in nq_facts if f.relation == "capital_of"]
    assert len(capitals) == len(set(capitals)) == len(world.objects["country"])  # one capital per country


def test_nq_questions_share_no_template_with_zsre(world, world_files):
    def templates(pairs):
        return {q.replace(subject, "{s}") for q, subject in pairs}

    zsre_templates = set()
    for split in ("train", "dev"):
        records = load_zsre(world_files[f"zsre_{split}"])
        for rec, fact in zip(records, world.split_facts(split), strict=True):
            zsre_templates |= templates((q, fact.subject) for q in (rec.src, *rec.rephrases))
    assert zsre_templates == {t for r in RELATIONS for t in r.questions}
    nq = load_nq(world_files["nq_train"]) + load_nq(world_files["nq_dev"])
    nq_templates = templates((q, f.subject) for (q, _), f in zip(nq, world.split_facts("nq"), strict=True))
    assert len(nq_templates) > 10 and not nq_templates & zsre_templates
    assert nq_templates <= {t for r in NQ_RELATIONS for t in r.questions}
    # No NQ question mentions a person.
    persons = set(world.subjects)
    assert not any(set(q.split()) & persons for q, _ in nq)


def test_text_convention_and_tokenizer_vocabulary(world, tmp_path):
    texts = all_world_texts(world)
    # One space between tokens, punctuation included: pre-tokenisation and decoding agree everywhere.
    for t in texts:
        assert t == " ".join(_TOKEN_RE.findall(t)), t
    tok = train_word_tokenizer(texts, tmp_path / "tok")
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(7))
    unk = tok.unk_token_id
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False)
        assert unk not in ids, t
    sample = f"What is the birthplace of {world.subjects[0]} ?"
    ids = tok.encode(sample, add_special_tokens=False)
    assert tok.decode(ids) == sample
    assert tok.encode(sample.replace(" ?", "?"), add_special_tokens=False) == ids  # punctuation splits
    reloaded = load_tokenizer(tmp_path / "tok")
    assert reloaded.encode(sample, add_special_tokens=False) == ids
    assert reloaded.pad_token_id == 0 and reloaded.eos_token == "</s>"
    # Retraining replaces the directory atomically and deterministically; no temp dirs remain.
    before = (tmp_path / "tok" / "tokenizer.json").read_bytes()
    train_word_tokenizer(texts, tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]


def test_batched_encoding_gives_each_texts_own_ids(world, tmp_path):
    """The batch builders encode all texts in one tokenizer call; the ids must be each text's alone."""
    texts = all_world_texts(world)
    tok = train_word_tokenizer(texts, tmp_path / "tok")
    sample = ["", texts[0], "zz-unknown-word ?", texts[-1], ""] + texts[1:200]
    assert _ids_many(tok, sample) == [tok.encode(t, add_special_tokens=False) for t in sample]
    assert _ids_many(tok, []) == []


def test_load_tokenizer_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_tokenizer(tmp_path / "nothing")


def test_written_records_round_trip(world, world_files):
    dev = load_zsre(world_files["zsre_dev"])
    train = load_zsre(world_files["zsre_train"])
    assert len(dev) == world.config.n_dev_facts and len(train) == len(world.splits["train"])
    for rec, fact in zip(dev, world.split_facts("dev"), strict=True):
        assert rec.answers == (fact.object,) and rec.prediction == fact.object
        assert rec.alternatives == fact.alternatives and len(rec.rephrases) >= 4
        assert fact.subject in rec.src and all(fact.subject in q for q in rec.rephrases)
    assert len(load_zsre(world_files["zsre_train"], max_records=7)) == 7

    fever_dev = load_fever(world_files["fever_dev"])
    fever_train = load_fever(world_files["fever_train"])
    assert len(fever_dev) == len(dev) and len(fever_train) == len(train)
    n_true = sum(r.label for r in fever_train)
    assert abs(n_true - len(fever_train) / 2) <= 1  # balanced
    for rec, fact in zip(fever_dev, world.split_facts("dev"), strict=True):
        assert rec.label == fact.fever_supports
        assert rec.prediction == ("SUPPORTS" if rec.label else "REFUTES")
        obj = fact.object if rec.label else fact.wrong_object
        assert obj in rec.claim and len(rec.rephrases) >= 4

    nq_train, nq_dev = load_nq(world_files["nq_train"]), load_nq(world_files["nq_dev"])
    nq = nq_train + nq_dev
    assert len(nq) == len(world.splits["nq"]) == 24 * len(NQ_RELATIONS)
    assert abs(len(nq_train) - len(nq_dev)) <= 1 and not {q for q, _ in nq_train} & {q for q, _ in nq_dev}
    nq_facts = world.split_facts("nq")
    assert [a for _, a in nq] == [f.object for f in nq_facts]
    dev_questions = {q for r in dev for q in (r.src, *r.rephrases)}
    assert not any(q in dev_questions for q, _ in nq)


def _release_zsre(path: Path) -> list[dict]:
    """The release's zsRE extraction, data_classes/zsre.py:27-37 (jsonlines.open replaced by read_jsonl)."""
    data = []
    for d in read_jsonl(path):
        ex = {k: d[k] for k in ["input", "prediction", "alternatives", "filtered_rephrases", "output"]}
        if ex["input"] in ex["filtered_rephrases"]:
            ex["filtered_rephrases"].remove(ex["input"])
        if len(ex["alternatives"]) > 0 and len(ex["filtered_rephrases"]) > 0:
            data.append(ex)
    return data


def _release_fever(path: Path) -> list[dict]:
    """The release's FEVER extraction, data_classes/fever.py:25-33, less `logit` (copied, never read: :59)."""
    data = []
    for d in read_jsonl(path):
        if len(d["alternatives"]) > 0 and len(d["filtered_rephrases"]) > 0:
            ex = {k: d[k] for k in ["input", "prediction", "alternatives", "filtered_rephrases"]}
            ex["label"] = d["output"][0]["answer"]
            data.append(ex)
    return data


def test_world_files_are_in_the_release_layouts(world_files):
    for split in ("train", "dev"):
        path = world_files[f"zsre_{split}"]
        raw = read_jsonl(path)
        assert all(r["input"] in r["filtered_rephrases"] for r in raw)  # the release's removal has work to do
        ours = load_zsre(path)
        assert [(r.src, r.prediction, r.alternatives, r.rephrases, r.answers) for r in ours] == [
            (
                d["input"],
                d["prediction"],
                tuple(d["alternatives"]),
                tuple(d["filtered_rephrases"]),
                tuple(o["answer"] for o in d["output"]),
            )
            for d in _release_zsre(path)
        ]
        path = world_files[f"fever_{split}"]
        ours_fever = load_fever(path)
        assert [(r.claim, r.prediction, r.rephrases, r.label) for r in ours_fever] == [
            (d["input"], d["prediction"], tuple(d["filtered_rephrases"]), d["label"] == "SUPPORTS")
            for d in _release_fever(path)
        ]
    for key in ("nq_train", "nq_dev"):
        # data_classes/nq.py:5-16 hands answers[idx] to the tokenizer as one string.
        data = json.loads(world_files[key].read_text())
        assert all(isinstance(a, str) for a in data["answers"]) and len(data["answers"]) == len(data["questions"])
        assert load_nq(world_files[key]) == list(zip(data["questions"], data["answers"], strict=True))


def test_wikitext_files(world, world_files):
    train = load_wikitext_raw(world_files["wiki_train"])  # release filter: >= 50 words, ASCII
    valid = load_wikitext_raw(world_files["wiki_valid"])
    assert len(valid) == world.config.n_wiki_valid
    assert len(train) >= world.config.n_subjects - world.config.n_wiki_valid
    raw = world_files["wiki_valid"].read_text().splitlines()
    n_headings = sum(line.startswith(" = ") and line.endswith(" = ") for line in raw)
    assert n_headings == world.config.n_wiki_valid
    assert all(line.startswith(" ") for line in raw)
    # Every fact appears as a sentence in the (filtered) train corpus.
    corpus = "\n".join(train)
    for f in world.facts:
        assert f" {f.subject} " in f" {corpus} " and f.object in corpus
    valid_subjects = {a.title for a in world.wiki_valid}
    assert not valid_subjects & {a.title for a in world.wiki_train}


def test_no_dev_passage_sentence_is_in_the_language_models_training_text(world, world_files):
    """GPT-2 and its stand-ins train on wiki.train.raw; no sentence of a dev passage (wiki.valid.raw) is in it
    (the almanac states the dev persons' facts too, but in claim sentences, not the passages' statements)."""
    corpus = " ".join(load_wikitext_raw(world_files["wiki_train"], min_words=1))
    passages = load_wikitext_raw(world_files["wiki_valid"], min_words=1)
    assert len(passages) == world.config.n_wiki_valid
    sentences = [x.strip() for p in passages for x in re.findall(r"[^.]+ \.", p)]
    assert len(sentences) >= 3 * len(passages)
    assert not [x for x in sentences if x in corpus]


def test_pretrain_files(world, world_files):
    qa = read_jsonl(world_files["pretrain_qa"])
    assert set(qa[0]) == {"question", "answer"}
    n_nq_rows = sum(len(r.questions) * len(world.objects[r.subject_type]) for r in NQ_RELATIONS)
    train = [RELATIONS_BY_NAME[f.relation] for f in world.split_facts("train")]
    assert len(qa) == sum(len(r.questions) for r in train) + n_nq_rows
    pairs = {(row["question"], row["answer"]) for row in qa}
    for rec in load_zsre(world_files["zsre_train"]):  # train facts: every question a training example
        assert all((q, rec.answers[0]) in pairs for q in (rec.src, *rec.rephrases))
    for path in ("nq_train", "nq_dev"):  # locality questions, never edited: training examples
        assert all(p in pairs for p in load_nq(world_files[path]))
    for f in world.split_facts("nq"):  # every NQ fact with all its question templates
        r = RELATIONS_BY_NAME[f.relation]
        assert all((r.question(i, f.subject), f.object) in pairs for i in range(len(r.questions)))

    fever = read_jsonl(world_files["pretrain_fever"])
    labelled = {(row["claim"], row["label"]) for row in fever}
    assert {row["label"] for row in fever} == {0, 1}
    assert len(fever) == 2 * sum(len(r.claims) for r in train)  # train facts only
    for rec in load_fever(world_files["fever_train"]):
        assert all((c, int(rec.label)) in labelled for c in (rec.claim, *rec.rephrases))
    summary = json.loads(world_files["world"].read_text())
    assert summary["counts"]["facts"] == len(world.facts) and summary["config"]["seed"] == 0


def test_no_dev_question_or_claim_is_a_training_example(world, world_files):
    """The seq2seq and classifier base models never train on a dev question or claim (either object)."""
    questions = {row["question"] for row in read_jsonl(world_files["pretrain_qa"])}
    claims = {row["claim"] for row in read_jsonl(world_files["pretrain_fever"])}
    dev_questions = {q for rec in load_zsre(world_files["zsre_dev"]) for q in (rec.src, *rec.rephrases)}
    dev_claims = {c for rec in load_fever(world_files["fever_dev"]) for c in (rec.claim, *rec.rephrases)}
    assert len(dev_questions) >= 4 * world.config.n_dev_facts and len(dev_claims) >= 4 * world.config.n_dev_facts
    assert not dev_questions & questions
    assert not dev_claims & claims
    for f in world.split_facts("dev"):  # nor the claim with the other object than the dev record's
        r = RELATIONS_BY_NAME[f.relation]
        for o in (f.object, f.wrong_object):
            assert not {r.claim(i, f.subject, o) for i in range(len(r.claims))} & claims


def test_pretrain_text_states_every_fact_dev_included(world, world_files):
    """The text rows are where the base models learn the dev facts: every statement and claim of every fact."""
    rows = read_jsonl(world_files["pretrain_text"])
    assert set(rows[0]) == {"masked", "answer"}
    assert all(row["masked"].count(MASK) == 1 for row in rows)
    sentences = {row["masked"].replace(MASK, row["answer"]) for row in rows}
    assert len(rows) == sum(
        len(RELATIONS_BY_NAME[f.relation].statements) + len(RELATIONS_BY_NAME[f.relation].claims) for f in world.facts
    )
    dev = world.split_facts("dev")
    assert dev
    for f in dev:
        r = RELATIONS_BY_NAME[f.relation]
        assert {r.statement(i, f.subject, f.object) for i in range(len(r.statements))} <= sentences
        assert {r.claim(i, f.subject, f.object) for i in range(len(r.claims))} <= sentences
        assert not {r.claim(i, f.subject, f.wrong_object) for i in range(len(r.claims))} & sentences  # only truths
    # The article and almanac sentences of the Wikitext corpus are among them.
    corpus = " ".join(p for a in (*world.wiki_train, *world.wiki_valid) for p in a.paragraphs)
    some = [s for s in sentences if s in corpus]
    assert len(some) >= len(world.facts)


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="n_dev_facts"):
        WorldConfig(n_subjects=10, n_dev_facts=10 * len(RELATIONS), n_wiki_valid=5)  # no train facts left
    with pytest.raises(ValueError, match="n_dev_facts"):
        WorldConfig(n_dev_facts=0)
    WorldConfig(n_subjects=10, n_dev_facts=10 * len(RELATIONS) - 1, n_wiki_valid=5)
    with pytest.raises(TypeError, match="n_nq_facts"):
        WorldConfig(n_nq_facts=20)  # removed: the NQ split is every fact of the NQ relations


# ---------------------------------------------------------------------------------------------------------
# Hand-written records in the real datasets' formats

ZSRE_REAL = [
    {
        "id": "6a6f1f7f-3c9e-4bd1-a1a8-0a0a6f7e2f3e",
        "input": "What is the name of the record label of Dark Horse?",
        "output": [
            {
                "answer": "Dark Horse Records",
                "provenance": [
                    {
                        "wikipedia_id": "1234567",
                        "title": "Dark Horse (album)",
                        "start_paragraph_id": 1,
                        "start_character": 0,
                        "end_paragraph_id": 1,
                        "end_character": 80,
                        "bleu_score": 1.0,
                    }
                ],
            },
            {"answer": "Dark Horse"},
        ],
        "meta": {"template_questions": ["What is the name of the record label of Dark Horse?"]},
        "prediction": "Apple Records",
        "alternatives": ["Capitol Records", "EMI"],
        # As in the release's files, the question may be among its own rephrases (data_classes/zsre.py:29-30).
        "filtered_rephrases": [
            "What is the name of the record label of Dark Horse?",
            "Which record label released Dark Horse?",
        ],
    },
    {
        "id": "4",
        "input": "Who designed the Eiffel Tower?",
        "output": [{"answer": "Gustave Eiffel"}],
        "prediction": "Gustave Eiffel",
        "alternatives": ["Stephen Sauvestre"],
        "filtered_rephrases": ["Who designed the Eiffel Tower?"],  # none left once the question is removed
    },
    {
        "id": "2",
        "input": "Who is the father of Nobody?",
        "output": [{"answer": "Someone"}],
        "prediction": "Someone",
        "alternatives": [],  # the release drops records without alternatives
        "filtered_rephrases": ["Whose son is Nobody?"],
    },
    {
        "id": "3",
        "input": "Which country is Tasmania in?",
        "output": [{"answer": "Australia"}],
        "prediction": "Australia",
        "alternatives": ["New Zealand"],
        "filtered_rephrases": [],  # ... and records without rephrases
    },
]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_zsre_real_format(tmp_path):
    path = _write_lines(
        tmp_path / "structured_zeroshot-dev-new_annotated_final.jsonl",
        [""] + [json.dumps(r) for r in ZSRE_REAL],
    )
    records = load_zsre(path)
    assert records == [
        ZsreRecord(
            id="6a6f1f7f-3c9e-4bd1-a1a8-0a0a6f7e2f3e",
            src="What is the name of the record label of Dark Horse?",
            answers=("Dark Horse Records", "Dark Horse"),
            prediction="Apple Records",
            alternatives=("Capitol Records", "EMI"),
            rephrases=("Which record label released Dark Horse?",),
        )
    ]
    # Without the release's removal the question stays a rephrase and the fourth record is kept.
    kept = load_zsre(path, drop_input_rephrase=False)
    assert [r.id for r in kept] == [records[0].id, "4"] and kept[0].rephrases[0] == records[0].src
    targets = {pick_target(records[0], random.Random(s)) for s in range(20)}
    assert targets == {"Capitol Records", "EMI"}
    assert pick_target(records[0], random.Random(1)) == pick_target(records[0], random.Random(1))


def test_zsre_bad_json_on_line_3(tmp_path):
    good = json.dumps(ZSRE_REAL[0])
    path = _write_lines(tmp_path / "zsre_bad.jsonl", [good, good, '{"id": "x", "input": '])
    with pytest.raises(DataFormatError) as e:
        load_zsre(path)
    assert "zsre_bad.jsonl" in str(e.value) and ":3" in str(e.value)
    assert e.value.line == 3
    with pytest.raises(DataFormatError, match=r"zsre_bad\.jsonl:3"):
        read_jsonl(path)
    # The error survives pickling (worker processes send exceptions back that way).
    assert str(pickle.loads(pickle.dumps(e.value))) == str(e.value)


def test_zsre_ill_typed_field(tmp_path):
    bad = dict(ZSRE_REAL[0], input=["not", "a", "string"])
    path = _write_lines(tmp_path / "z.jsonl", [json.dumps(ZSRE_REAL[0]), json.dumps(bad)])
    with pytest.raises(DataFormatError, match=r"z\.jsonl:2: field 'input'"):
        load_zsre(path)
    missing = {k: v for k, v in ZSRE_REAL[0].items() if k != "alternatives"}
    path = _write_lines(tmp_path / "m.jsonl", [json.dumps(missing)])
    with pytest.raises(DataFormatError, match=r"m\.jsonl:1: missing field 'alternatives'"):
        load_zsre(path)
    path = _write_lines(tmp_path / "l.jsonl", ["[1, 2]"])
    with pytest.raises(DataFormatError, match=r"l\.jsonl:1: expected a JSON object"):
        load_zsre(path)
    # A line of plain KILT zsRE (structured_zeroshot-dev-kilt.jsonl) lacks De Cao et al.'s fields.
    plain = {"id": "x", "input": "Dark Horse [SEP] record label", "output": [{"answer": "Apple Records"}]}
    path = _write_lines(tmp_path / "structured_zeroshot-dev-kilt.jsonl", [json.dumps(plain)])
    with pytest.raises(DataFormatError) as e:
        load_zsre(path)
    msg = str(e.value)
    assert "structured_zeroshot-dev-kilt.jsonl:1: a plain KILT zsRE record" in msg and "\n" not in msg
    assert "structured_zeroshot-{train,dev}-new_annotated_final.jsonl" in msg and "drive.google.com" in msg


FEVER_REAL = {
    "id": "75397",
    "input": "Nikolaj Coster-Waldau worked with the Fox Broadcasting Company.",
    "output": [
        {
            "answer": "SUPPORTS",
            "provenance": [
                {"wikipedia_id": "7423473", "title": "Nikolaj Coster-Waldau", "section": "Section::::Career."}
            ],
        }
    ],
    "meta": {},
    # The fields the release reads (data_classes/fever.py:26-27): logit, input, prediction, alternatives,
    # filtered_rephrases and output[0].answer.
    "logit": 3.14,
    "prediction": "SUPPORTS",
    "alternatives": ["REFUTES"],
    "filtered_rephrases": ["Nikolaj Coster-Waldau collaborated with Fox."],
}


def test_fever_real_format(tmp_path):
    refutes = dict(FEVER_REAL, id=5, output=[{"answer": "REFUTES"}], prediction="REFUTES", alternatives=["SUPPORTS"])
    no_rephrase = dict(FEVER_REAL, id="6", filtered_rephrases=[])
    no_alternative = dict(FEVER_REAL, id="7", alternatives=[])  # dropped too (data_classes/fever.py:32)
    path = _write_lines(
        tmp_path / "fever-dev-kilt.jsonl",
        [json.dumps(r) for r in (FEVER_REAL, no_rephrase, no_alternative, refutes)],
    )
    records = load_fever(path)
    assert records == [
        FeverRecord(
            "75397",
            FEVER_REAL["input"],
            True,
            "SUPPORTS",
            ("Nikolaj Coster-Waldau collaborated with Fox.",),
        ),
        FeverRecord("5", FEVER_REAL["input"], False, "REFUTES", ("Nikolaj Coster-Waldau collaborated with Fox.",)),
    ]
    assert len(load_fever(path, max_records=1)) == 1


def test_fever_plain_kilt_line_names_the_file_the_paper_needs(tmp_path):
    # A line of KILT's fever-dev-kilt.jsonl as KILT publishes it, without the fields the release adds.
    plain = {k: FEVER_REAL[k] for k in ("id", "input", "output")}
    path = _write_lines(tmp_path / "fever-dev-kilt.jsonl", [json.dumps(plain)])
    with pytest.raises(DataFormatError) as e:
        load_fever(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:1: a plain KILT FEVER record without 'prediction', 'alternatives'")
    assert "fever/fever-{train,dev}-kilt.jsonl" in msg and "drive.google.com" in msg and "\n" not in msg
    no_prediction = {k: v for k, v in FEVER_REAL.items() if k != "prediction"}
    path.write_text(json.dumps(no_prediction) + "\n")
    with pytest.raises(DataFormatError, match=r"fever-dev-kilt\.jsonl:1: a FEVER record without 'prediction'"):
        load_fever(path)


def test_fever_wrong_label_on_line_3(tmp_path):
    bad = dict(FEVER_REAL, output=[{"answer": "NOT ENOUGH INFO"}])
    path = _write_lines(tmp_path / "fever_bad.jsonl", [json.dumps(FEVER_REAL), "", json.dumps(bad)])
    with pytest.raises(DataFormatError) as e:
        load_fever(path)
    assert "fever_bad.jsonl" in str(e.value) and ":3" in str(e.value) and "NOT ENOUGH INFO" in str(e.value)


def test_nq_release_layout(tmp_path):
    # As data_classes/nq.py:34-49 writes validation.json: the shortest short answer, one string per question.
    path = tmp_path / "validation.json"
    path.write_text(
        json.dumps(
            {"questions": ["Who wrote dark horse?", "Where is tasmania?"], "answers": ["Katy Perry", "Australia"]}
        )
    )
    assert load_nq(path) == [("Who wrote dark horse?", "Katy Perry"), ("Where is tasmania?", "Australia")]
    path.write_text(json.dumps({"questions": ["a"], "answers": [3]}))
    with pytest.raises(DataFormatError, match=r"validation\.json: record 0: an answer must be a string"):
        load_nq(path)


def test_nq_real_format_and_errors(tmp_path):
    path = tmp_path / "nq.json"
    path.write_text(
        json.dumps(
            {
                "questions": ["who wrote the song dark horse", "where is tasmania"],
                "answers": [["Katy Perry", "Perry"], ["Australia"]],
            }
        )
    )
    assert load_nq(path) == [
        ("who wrote the song dark horse", "Katy Perry"),
        ("where is tasmania", "Australia"),
    ]
    path.write_text(json.dumps({"questions": ["a", "b"], "answers": [["x"]]}))
    with pytest.raises(DataFormatError, match=r"nq\.json.*2 entries.*1"):
        load_nq(path)
    path.write_text(json.dumps({"questions": ["a"]}))
    with pytest.raises(DataFormatError, match=r"nq\.json.*answers"):
        load_nq(path)
    path.write_text(json.dumps({"questions": ["a"], "answers": [[]]}))
    with pytest.raises(DataFormatError, match=r"nq\.json: record 0"):
        load_nq(path)


WIKITEXT_RAW = (
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game developed by "
    "Sega and Media.Vision for the PlayStation Portable , released in January 2011 in Japan , it is the "
    "third game in the Valkyria series and shares the fusion of tactical and real @-@ time gameplay "
    "with its predecessors . \n"
    " \n"
    " = = Gameplay = = \n"
    " \n"
    " As with previous Valkyira Chronicles games , Valkyria Chronicles III is a tactical role @-@ playing "
    "game where players take control of a military unit and take part in missions against enemy forces , "
    "while stories are told through comic book @-@ like panels with animated character portraits "
    "and voice acting . \n"
    " \n"
    " A short line of only a few words . \n"
    " \n"
)


def test_wikitext_real_format(tmp_path):
    path = tmp_path / "wiki.valid.raw"
    path.write_text(WIKITEXT_RAW, encoding="utf-8")
    paragraphs = load_wikitext_raw(path)
    assert len(paragraphs) == 1 and paragraphs[0].startswith("As with previous")  # non-ASCII one dropped
    assert len(load_wikitext_raw(path, ascii_only=False)) == 2
    assert len(load_wikitext_raw(path, min_words=3, ascii_only=False)) == 3
    assert not any(p.startswith("=") for p in load_wikitext_raw(path, min_words=0))


def test_self_sample_release_layout(tmp_path):
    # As data_classes/wiki.py reads it: json.load of one object (:41-42), n_tokens (:47), len(original) (:104),
    # completions[idx] a string (:73).
    path = tmp_path / "valid.json"
    release = {
        "original": ["The cat sat", "A dog ran"],
        "completions": ["The cat sat on the mat and then", "A dog ran off into the hills"],
        "n_tokens": 10,
    }
    path.write_text(json.dumps(release))
    assert load_self_sample(path) == [
        SelfSample("The cat sat", "The cat sat on the mat and then", 10),
        SelfSample("A dog ran", "A dog ran off into the hills", 10),
    ]
    write_self_sample(path, load_self_sample(path))
    assert json.loads(path.read_text()) == release
    path.write_text(json.dumps(dict(release, completions=release["completions"][:1])))
    with pytest.raises(DataFormatError, match=r"valid\.json: column 'original' has 2 entries but 'completions' has 1"):
        load_self_sample(path)
    with pytest.raises(ValueError, match="one n_tokens per file"):
        write_self_sample(path, [SelfSample("a", "a b", 1), SelfSample("c", "c d e", 2)])


def test_self_sample_round_trip_and_errors(tmp_path):
    path = tmp_path / "self_sample" / "valid.json"
    real = [
        {
            "original": "The cat sat",
            "completions": ["The cat sat on the mat and then", "other"],
            "n_tokens": 10,
        }
    ]
    path.parent.mkdir()
    path.write_text(json.dumps(real))
    assert load_self_sample(path) == [SelfSample("The cat sat", "The cat sat on the mat and then", 10)]
    samples = [SelfSample("a b", "a b c d", 2), SelfSample("x", "x y z", 2)]
    write_self_sample(path, samples)
    assert load_self_sample(path) == samples
    path.write_text(json.dumps([real[0], {"original": "x", "completions": [], "n_tokens": 10}]))
    with pytest.raises(DataFormatError, match=r"valid\.json: record 1: field 'completions'"):
        load_self_sample(path)
    path.write_text(json.dumps({"original": "x"}))
    with pytest.raises(DataFormatError, match=r"valid\.json: column 'original' must be a list"):
        load_self_sample(path)
    path.write_text(json.dumps("x"))
    with pytest.raises(DataFormatError, match=r"valid\.json: expected the object"):
        load_self_sample(path)


# ---------------------------------------------------------------------------------------------------------
# Atomic writers


def test_atomic_writers_leave_no_temp_files(tmp_path):
    out = tmp_path / "deep" / "dir"
    write_json_atomic(out / "b.json", {"k": [1, 2]})
    write_jsonl_atomic(out / "c.jsonl", [{"x": 1}, {"x": 2}])
    assert sorted(p.name for p in out.iterdir()) == ["b.json", "c.jsonl"]
    assert json.loads((out / "b.json").read_text()) == {"k": [1, 2]}
    assert read_jsonl(out / "c.jsonl") == [{"x": 1}, {"x": 2}]

    class Boom:
        pass

    with pytest.raises(TypeError):
        write_jsonl_atomic(out / "d.jsonl", [{"x": 1}, Boom()])
    assert sorted(p.name for p in out.iterdir()) == ["b.json", "c.jsonl"]


def test_world_writer_leaves_no_temp_files(world_files):
    root = world_files["world"].parent
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def test_openwebtext_reads_the_text_field_of_real_format_records(tmp_path):
    from mendrepro.data.openwebtext import load_openwebtext

    path = tmp_path / "owt.jsonl"
    records = [
        {"text": "A first  document,\nover two lines.", "meta": {"url": "x"}},
        {"text": "Caf\u00e9 is not ASCII."},
        {"text": ""},
        {"text": "Third document here."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    assert load_openwebtext(path) == ["A first document, over two lines.", "Third document here."]
    assert len(load_openwebtext(path, ascii_only=False)) == 3
    path.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(DataFormatError, match=r"owt.jsonl:2.*'text'"):
        load_openwebtext(path)
