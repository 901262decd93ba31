"""The seeded synthetic "fictional world" of the tiny profile.

Persons (subjects) have one fact per person relation; objects are invented cities, countries, companies,
instruments, sports and languages. The person facts are the zsRE and FEVER facts (`n_dev_facts` dev, the rest
train). The NQ locality questions come from separate relations about non-person subjects (a country's capital,
a company's headquarters, ...) whose question templates share none with the person relations: as in the paper,
where zsRE edits are checked for locality on Natural Questions, a different distribution of questions. The world
is written in the layouts of the MEND release's files (zsRE and FEVER KILT jsonl with De Cao et al.'s fields, NQ
json with one answer string per question, Wikitext-103 raw), so the same loaders read the tiny and the paper data.
As in the release's zsRE files, a question may be among its own `filtered_rephrases` (every record here lists it
first), which the loader removes as the release does. The FEVER records lack only `logit`, the base classifier's
score, which the release copies into each example (data_classes/fever.py:26, 59) but never reads.

Text convention: every token is separated by one space, punctuation included ("Where was Balorin born ?"), so
a whitespace+punctuation pre-tokenizer splits it identically everywhere and decoding (join with spaces)
reproduces it exactly.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from mendrepro import atomic
from mendrepro.data.formats import write_json_atomic, write_jsonl_atomic

SPLITS = ("train", "dev", "nq")
FEVER_LABELS = ("SUPPORTS", "REFUTES")


@dataclass(frozen=True)
class WorldConfig:
    """Size and seed of the fictional world."""

    seed: int = 0
    n_subjects: int = 200
    n_objects_per_type: int = 24
    n_dev_facts: int = 100  # person facts in the zsRE/FEVER dev split; the other person facts are train
    n_wiki_valid: int = 40
    wiki_min_words: int = 50  # the release keeps Wikitext paragraphs of >= 50 words; every paragraph passes

    def __post_init__(self) -> None:
        n_facts = self.n_subjects * len(RELATIONS)
        if self.n_subjects < 2:
            raise ValueError(f"WorldConfig.n_subjects must be >= 2, got {self.n_subjects}")
        if self.n_objects_per_type < 8:
            # 1 true object + up to 6 alternatives + a distinct wrong object for FEVER.
            raise ValueError(f"WorldConfig.n_objects_per_type must be >= 8, got {self.n_objects_per_type}")
        if not 1 <= self.n_dev_facts < n_facts:
            raise ValueError(
                f"WorldConfig.n_dev_facts must be in [1, {n_facts}) (n_subjects * {len(RELATIONS)} person "
                f"relations), got {self.n_dev_facts}"
            )
        if not 1 <= self.n_wiki_valid < self.n_subjects:
            raise ValueError(f"WorldConfig.n_wiki_valid must be in [1, n_subjects), got {self.n_wiki_valid}")


def world_fields(section: dict, corpus: str | None = None) -> dict:
    """The fields of one world of a config's ``world`` section, as written there. Its optional ``wikitext`` entry
    gives the Wikitext corpus a world of its own (those fields over the section's); ``corpus="wikitext"`` returns
    that world's, or the main world's when there is none."""
    main = {k: v for k, v in section.items() if k != "wikitext"}
    return {**main, **section.get("wikitext", {})} if corpus == "wikitext" else main


def world_folder(file: str) -> str:
    """A world's folder: two levels above one of its files (``world/zsre/<file>``), as the world rules write it."""
    return os.path.normpath(os.path.dirname(os.path.dirname(file)))


def world_config(section: dict, corpus: str | None = None) -> WorldConfig:
    """The WorldConfig of one world of a config's ``world`` section (:func:`world_fields`)."""
    return WorldConfig(**world_fields(section, corpus))


@dataclass(frozen=True)
class Relation:
    """A relation with its paraphrase templates; `{s}` is the subject and `{o}` the object."""

    name: str
    object_type: str
    questions: tuple[str, ...]  # zsRE / NQ questions; template 0 is the zsRE `input`
    claims: tuple[str, ...]  # FEVER claims (short almanac sentences); template 0 is the FEVER `input`
    statements: tuple[str, ...]  # Wikitext sentences (prose for persons, short almanac sentences for NQ)
    subject_type: str = "person"  # "person" or an object type
    one_to_one: bool = False  # distinct objects for distinct subjects (a country's capital)

    def question(self, i: int, s: str) -> str:
        return self.questions[i].format(s=s)

    def claim(self, i: int, s: str, o: str) -> str:
        return self.claims[i].format(s=s, o=o)

    def statement(self, i: int, s: str, o: str) -> str:
        return self.statements[i].format(s=s, o=o)


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "born_in",
        "city",
        (
            "Where was {s} born ?",
            "In which city was {s} born ?",
            "What is the birthplace of {s} ?",
            "What city was {s} born in ?",
            "Which city is the place of birth of {s} ?",
            "{s} was born in which city ?",
        ),
        (
            "{s} was born in {o} .",
            "The birthplace of {s} is {o} .",
            "{o} is the city where {s} was born .",
            "{s} is a native of {o} .",
            "The place of birth of {s} is {o} .",
        ),
        (
            "{s} was born in the city of {o} and spent the early years of childhood there .",
            "Records show that {s} was born in {o} , a city remembered fondly in later years .",
        ),
    ),
    Relation(
        "citizen_of",
        "country",
        (
            "Which country is {s} a citizen of ?",
            "What is the nationality of {s} ?",
            "Of which country is {s} a citizen ?",
            "What country does {s} hold citizenship in ?",
            "{s} is a citizen of which country ?",
        ),
        (
            "{s} is a citizen of {o} .",
            "The nationality of {s} is that of {o} .",
            "{s} holds citizenship in {o} .",
            "{o} is the country of which {s} is a citizen .",
            "{s} carries a passport issued by {o} .",
        ),
        (
            "{s} holds the citizenship of {o} and has kept it throughout a long life .",
            "As a citizen of {o} , {s} has often travelled abroad on official business .",
        ),
    ),
    Relation(
        "works_for",
        "company",
        (
            "Which company does {s} work for ?",
            "Who is the employer of {s} ?",
            "For which company does {s} work ?",
            "What company employs {s} ?",
            "{s} works for which company ?",
        ),
        (
            "{s} works for {o} .",
            "The employer of {s} is {o} .",
            "{o} employs {s} .",
            "{s} is employed by {o} .",
            "{s} is on the staff of {o} .",
        ),
        (
            "For many years {s} has worked for {o} , where colleagues praise a careful and patient manner .",
            "{s} joined {o} as a young employee and still works for the company today .",
        ),
    ),
    Relation(
        "plays",
        "instrument",
        (
            "Which instrument does {s} play ?",
            "What instrument does {s} play ?",
            "What musical instrument is played by {s} ?",
            "{s} plays which instrument ?",
            "Which instrument is {s} known to play ?",
        ),
        (
            "{s} plays the {o} .",
            "The instrument played by {s} is the {o} .",
            "{s} is a player of the {o} .",
            "{s} performs music on the {o} .",
            "The {o} is the instrument of {s} .",
        ),
        (
            "In the evenings {s} plays the {o} , an instrument learned from an old teacher .",
            "{s} is known among friends as a gifted player of the {o} .",
        ),
    ),
    Relation(
        "speaks",
        "language",
        (
            "Which language does {s} speak ?",
            "What language does {s} speak ?",
            "What is the native language of {s} ?",
            "In which language does {s} talk ?",
            "{s} speaks which language ?",
        ),
        (
            "{s} speaks {o} .",
            "The native language of {s} is {o} .",
            "{s} talks in {o} .",
            "{o} is the language spoken by {s} .",
            "{s} is a speaker of {o} .",
        ),
        (
            "At home {s} speaks {o} , the language used by the family for generations .",
            "{s} speaks {o} fluently and has written several letters in that language .",
        ),
    ),
    Relation(
        "practises",
        "sport",
        (
            "Which sport does {s} practise ?",
            "What sport does {s} practise ?",
            "What sport is {s} known for ?",
            "Which sport does {s} compete in ?",
            "{s} practises which sport ?",
        ),
        (
            "{s} practises {o} .",
            "The sport of {s} is {o} .",
            "{s} competes in {o} .",
            "{o} is the sport practised by {s} .",
            "{s} is an athlete in {o} .",
        ),
        (
            "Every weekend {s} practises {o} with a small club of devoted amateurs .",
            "{s} took up {o} at school and has competed in the sport ever since .",
        ),
    ),
)

# NQ-only relations: non-person subjects (drawn from the object names) and question templates that share none
# with the person relations above, so an edit of a zsRE fact has no same-template NQ neighbour. No FEVER claims.
NQ_RELATIONS: tuple[Relation, ...] = (
    Relation(
        "capital_of",
        "city",
        (
            "What is the capital of {s} ?",
            "Which city is the capital of {s} ?",
            "What city serves as the capital of {s} ?",
            "Which city is the seat of government of {s} ?",
            "The capital of {s} is which city ?",
        ),
        (),
        ("The capital of {s} is {o} .", "{o} is the capital city of {s} ."),
        subject_type="country",
        one_to_one=True,
    ),
    Relation(
        "headquartered_in",
        "city",
        (
            "Where is {s} headquartered ?",
            "In which city is {s} based ?",
            "Where are the headquarters of {s} ?",
            "Which city is home to the headquarters of {s} ?",
            "What city is {s} based in ?",
        ),
        (),
        ("{s} is headquartered in {o} .", "The headquarters of {s} are in {o} ."),
        subject_type="company",
    ),
    Relation(
        "official_language",
        "language",
        (
            "What language is spoken in {s} ?",
            "What is the official language of {s} ?",
            "Which language is official in {s} ?",
            "What do people in {s} speak ?",
            "Which language do the people of {s} use ?",
        ),
        (),
        ("The official language of {s} is {o} .", "In {s} people speak {o} ."),
        subject_type="country",
    ),
    Relation(
        "national_sport",
        "sport",
        (
            "What is the national sport of {s} ?",
            "Which sport is the national sport of {s} ?",
            "What sport is most popular in {s} ?",
            "Which sport do crowds in {s} love most ?",
            "What is the favourite sport of the people of {s} ?",
        ),
        (),
        ("The national sport of {s} is {o} .", "{o} is the most popular sport in {s} ."),
        subject_type="country",
    ),
    Relation(
        "made_by",
        "company",
        (
            "Who makes the {s} ?",
            "Which company makes the {s} ?",
            "Who is the maker of the {s} ?",
            "What firm builds the {s} ?",
            "The {s} is made by which company ?",
        ),
        (),
        ("The {s} is made by {o} .", "{o} builds the {s} ."),
        subject_type="instrument",
    ),
)
ALL_RELATIONS: tuple[Relation, ...] = RELATIONS + NQ_RELATIONS
RELATIONS_BY_NAME = {r.name: r for r in ALL_RELATIONS}
OBJECT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(r.object_type for r in RELATIONS))
assert all(r.subject_type in OBJECT_TYPES and r.object_type in OBJECT_TYPES for r in NQ_RELATIONS)

# Name parts. Two-word names (a modifier word plus an invented word) give multi-token edit targets.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei")
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "m")
# object type -> (modifier words, position "pre"/"post", probability of a two-word name, single-word suffixes)
_NAME_STYLE: dict[str, tuple[tuple[str, ...], str, float, tuple[str, ...]]] = {
    "city": (("Port", "New", "San", "Fort", "Lake"), "pre", 0.35, ("", "", "burg", "ton")),
    "country": (("North", "South", "East", "West"), "pre", 0.25, ("", "ia", "land")),
    "company": (("Works", "Systems", "Industries", "Labs", "Holdings"), "post", 0.5, ("", "co")),
    "instrument": (("horn", "harp", "drum", "flute", "pipe"), "post", 0.5, ("", "ina")),
    "sport": (("ball", "racing", "polo"), "post", 0.35, ("", "ing")),
    "language": ((), "pre", 0.0, ("ish", "ese", "ic", "an")),
}
_TOKEN_RE = re.compile(r"\w+|[^\w\s]+")


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple with the seeded choices made for it."""

    id: int
    subject: str
    subject_type: str  # "person" (zsRE / FEVER facts) or the object type of an NQ fact's subject
    subject_id: int  # index in World.subjects (persons) or in World.objects[subject_type]
    relation: str
    object: str
    split: str  # "train" | "dev" (zsRE / FEVER, person facts) or "nq" (locality only, NQ_RELATIONS facts)
    alternatives: tuple[str, ...]  # 4-6 other objects of the same type (zsRE edit targets)
    wrong_object: str  # the false object of this fact's REFUTES claims
    fever_supports: bool  # whether this fact's FEVER record is the true claim (False for NQ facts)
    nq_template: int  # question template used in the NQ files


@dataclass(frozen=True)
class Article:
    """A Wikitext-style article: a title and paragraphs (one line each)."""

    title: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class World:
    """Everything generated from a WorldConfig."""

    config: WorldConfig
    subjects: tuple[str, ...]  # persons
    objects: dict[str, tuple[str, ...]]  # object type -> names
    relations: tuple[Relation, ...]  # person relations (zsRE / FEVER)
    nq_relations: tuple[Relation, ...]  # NQ-only relations
    facts: tuple[Fact, ...]  # person facts (ids 0 .. n_subjects * len(relations) - 1), then NQ facts
    splits: dict[str, tuple[int, ...]]  # split -> fact ids, in file order
    wiki_train: tuple[Article, ...]
    wiki_valid: tuple[Article, ...]

    def split_facts(self, split: str) -> list[Fact]:
        return [self.facts[i] for i in self.splits[split]]


def _template_words() -> set[str]:
    words: set[str] = set()
    for r in ALL_RELATIONS:
        for t in (*r.questions, *r.claims, *r.statements):
            words.update(w.lower() for w in _TOKEN_RE.findall(t.replace("{s}", "").replace("{o}", "")))
    for mods, _, _, _ in _NAME_STYLE.values():
        words.update(m.lower() for m in mods)
    return words | {"almanac", "world", "facts", "of", "the"}


def _make_names(
    rng: random.Random, n: int, taken: set[str], syllables: tuple[int, int], suffixes: tuple[str, ...] = ("",)
) -> list[str]:
    """Draw `n` new unique capitalised invented words (lower-cased forms recorded in `taken`)."""
    names: list[str] = []
    while len(names) < n:
        k = rng.randint(*syllables)
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(k)]
        stem, suffix = "".join(parts) + rng.choice(_CODAS), rng.choice(suffixes)
        if suffix[:1] in "aeiou" and suffix:
            stem = stem.rstrip("aeiou")  # "Gai" + "ina" -> "Gina", not "Gaiina"
        word = (stem + suffix).capitalize()
        if word.lower() in taken or len(word) < 4:
            continue
        taken.add(word.lower())
        names.append(word)
    return names


def generate_world(cfg: WorldConfig | None = None) -> World:
    """Generate the world; identical configs give identical worlds (one `random.Random(seed)`)."""
    cfg = cfg or WorldConfig()
    rng = random.Random(cfg.seed)
    taken = _template_words()  # invented words never collide with template words or each other

    subjects = tuple(_make_names(rng, cfg.n_subjects, taken, (2, 3)))
    objects: dict[str, tuple[str, ...]] = {}
    for otype in OBJECT_TYPES:
        mods, pos, p_two, suffixes = _NAME_STYLE[otype]
        bases = _make_names(rng, cfg.n_objects_per_type, taken, (1, 2), suffixes)
        names = []
        for base in bases:
            if mods and rng.random() < p_two:
                mod = rng.choice(mods)
                names.append(f"{mod} {base}" if pos == "pre" else f"{base} {mod}")
            else:
                names.append(base)
        objects[otype] = tuple(names)

    # One fact per (subject, relation): persons x RELATIONS, then (for NQ) each NQ relation's subject type
    # x NQ_RELATIONS. Objects uniform over the type, or a seeded injection for one-to-one relations.
    facts_raw = []  # (subject, subject type, subject id, relation, object)
    for si, s in enumerate(subjects):
        for r in RELATIONS:
            facts_raw.append((s, "person", si, r, rng.choice(objects[r.object_type])))
    n_person = len(facts_raw)
    for r in NQ_RELATIONS:
        subj_pool, pool = objects[r.subject_type], objects[r.object_type]
        if r.one_to_one and len(pool) >= len(subj_pool):
            objs = rng.sample(pool, len(subj_pool))
        else:
            objs = [rng.choice(pool) for _ in subj_pool]
        facts_raw += [(s, r.subject_type, si, r, o) for si, (s, o) in enumerate(zip(subj_pool, objs, strict=True))]

    # Deterministic splits: person facts shuffled once, then dev | train; NQ facts shuffled (halved on write).
    order = list(range(n_person))
    rng.shuffle(order)
    dev_ids = tuple(order[: cfg.n_dev_facts])
    train_ids = tuple(order[cfg.n_dev_facts :])
    nq_order = list(range(n_person, len(facts_raw)))
    rng.shuffle(nq_order)
    nq_ids = tuple(nq_order)
    split_of = {i: "dev" for i in dev_ids} | {i: "nq" for i in nq_ids} | {i: "train" for i in train_ids}
    # FEVER labels alternate along each split's (shuffled) file order: exactly balanced, not tied to relation.
    supports = {i: k % 2 == 0 for ids in (train_ids, dev_ids) for k, i in enumerate(ids)}
    facts = []
    for i, (s, subject_type, si, r, o) in enumerate(facts_raw):
        others = [x for x in objects[r.object_type] if x != o]
        alternatives = tuple(rng.sample(others, rng.randint(4, 6)))
        wrong = rng.choice(others)
        nq_t = rng.randrange(len(r.questions))
        facts.append(
            Fact(
                id=i,
                subject=s,
                subject_type=subject_type,
                subject_id=si,
                relation=r.name,
                object=o,
                split=split_of[i],
                alternatives=alternatives,
                wrong_object=wrong,
                fever_supports=supports.get(i, False),
                nq_template=nq_t,
            )
        )
    splits = {"train": train_ids, "dev": dev_ids, "nq": nq_ids}

    wiki_train, wiki_valid = _make_wiki(rng, cfg, subjects, tuple(facts))
    return World(cfg, subjects, objects, RELATIONS, NQ_RELATIONS, tuple(facts), splits, wiki_train, wiki_valid)


# The title of the train corpus's last article, one short sentence per fact of the world.
ALMANAC_TITLE = "Almanac of the world"


def _make_wiki(
    rng: random.Random, cfg: WorldConfig, subjects: tuple[str, ...], facts: tuple[Fact, ...]
) -> tuple[tuple[Article, ...], tuple[Article, ...]]:
    by_subject: dict[int, list[Fact]] = {}  # person articles; NQ facts appear in the almanac only
    for f in facts:
        if f.subject_type == "person":
            by_subject.setdefault(f.subject_id, []).append(f)

    articles = []
    for si, s in enumerate(subjects):
        fs = list(by_subject[si])
        rng.shuffle(fs)  # vary the sentence order per article
        sentences = []
        for f in fs:
            r = RELATIONS_BY_NAME[f.relation]
            sentences.append(r.statement(rng.randrange(len(r.statements)), s, f.object))
        # Restate facts with the other template until the paragraph passes the release's length filter.
        k = 0
        while sum(len(x.split()) for x in sentences) < cfg.wiki_min_words:
            f = fs[k % len(fs)]
            r = RELATIONS_BY_NAME[f.relation]
            sentences.append(r.statement(k % len(r.statements), s, f.object))
            k += 1
        articles.append(Article(s, (" ".join(sentences),)))

    valid_idx = set(rng.sample(range(len(subjects)), cfg.n_wiki_valid))
    valid = tuple(a for i, a in enumerate(articles) if i in valid_idx)
    train = [a for i, a in enumerate(articles) if i not in valid_idx]

    # An "almanac" in the train corpus: one short sentence for every fact (person and NQ), so the LM corpus
    # covers the world. Person facts use a (true) claim, NQ facts (no claims) a short statement.
    shuffled = list(facts)
    rng.shuffle(shuffled)
    short = []
    for f in shuffled:
        r = RELATIONS_BY_NAME[f.relation]
        templates = r.claims or r.statements
        short.append(templates[rng.randrange(len(templates))].format(s=f.subject, o=f.object))
    paragraphs: list[list[str]] = [[]]
    for sent in short:
        if sum(len(x.split()) for x in paragraphs[-1]) >= cfg.wiki_min_words:
            paragraphs.append([])
        paragraphs[-1].append(sent)
    if len(paragraphs) > 1 and sum(len(x.split()) for x in paragraphs[-1]) < cfg.wiki_min_words:
        paragraphs[-2].extend(paragraphs.pop())  # no short last paragraph, or the filter would drop facts
    train.append(Article(ALMANAC_TITLE, tuple(" ".join(p) for p in paragraphs)))
    return tuple(train), valid


# ---------------------------------------------------------------------------------------------------------
# Records in the real datasets' formats


def zsre_record(fact: Fact) -> dict:
    """A zsRE KILT record (`structured_zeroshot-*-new_annotated_final.jsonl`) for one fact."""
    r = RELATIONS_BY_NAME[fact.relation]
    questions = [r.question(i, fact.subject) for i in range(len(r.questions))]
    return {
        "id": f"synth-zsre-{fact.id:06d}",
        "input": questions[0],
        "output": [
            {
                "answer": fact.object,
                "provenance": [{"wikipedia_id": str(100000 + fact.subject_id), "title": fact.subject}],
            }
        ],
        "meta": {"template_questions": questions},
        "prediction": fact.object,
        "alternatives": list(fact.alternatives),
        "filtered_rephrases": questions,  # the question itself included: the loader drops it, as released
    }


def fever_record(fact: Fact) -> dict:
    """A FEVER KILT record (`fever-*-kilt.jsonl`): the true claim (SUPPORTS) or a false one (REFUTES)."""
    r = RELATIONS_BY_NAME[fact.relation]
    obj = fact.object if fact.fever_supports else fact.wrong_object
    claims = [r.claim(i, fact.subject, obj) for i in range(len(r.claims))]
    label, other = FEVER_LABELS if fact.fever_supports else FEVER_LABELS[::-1]
    return {
        "id": f"synth-fever-{fact.id:06d}",
        "input": claims[0],
        "output": [{"answer": label}],
        "prediction": label,
        "alternatives": [other],
        "filtered_rephrases": claims[1:],
    }


def nq_file(facts: list[Fact]) -> dict:
    """An NQ file as the release writes it (`{"questions": [...], "answers": [...]}`, one answer string each)."""
    questions = [RELATIONS_BY_NAME[f.relation].question(f.nq_template, f.subject) for f in facts]
    return {"questions": questions, "answers": [f.object for f in facts]}


def wikitext_raw(articles: tuple[Article, ...]) -> str:
    """Articles in the wikitext-103-raw layout (leading space, ` = Title = ` headings, ` ` blank lines)."""
    lines = [" "]
    for a in articles:
        lines += [f" = {a.title} = ", " "]
        for p in a.paragraphs:
            lines += [f" {p} ", " "]
    return "\n".join(lines) + "\n"


MASK = "[MASK]"  # the tokenizer's mask token (data/tokenizer.py SPECIAL_TOKENS)


def pretrain_text_rows(world: World) -> list[dict]:
    """Pre-training text of BART, T5 and BERT: every statement and claim sentence of every fact, dev included.

    These are the sentences the world's prose is written from (articles use the statements, the almanac the
    claims), all of them for every fact: as BERT-base and BART-base read Wikipedia, including the articles of
    Wikitext's dev split, this is where the seq2seq and classifier base models learn the dev facts. Each row is
    the sentence with its object span replaced by one ``[MASK]`` (``masked``) and the object (``answer``), so a
    model can be trained to fill it (BART-style infilling; masked LM for BERT).
    """
    rows = []
    for f in world.facts:
        r = RELATIONS_BY_NAME[f.relation]
        for template in (*r.statements, *r.claims):
            rows.append({"masked": template.format(s=f.subject, o=MASK), "answer": f.object})
    return rows


def pretrain_qa_rows(world: World) -> list[dict]:
    """Question answering examples of the seq2seq base models: every TRAIN person fact and every NQ fact, each
    with every question template. Dev facts are never QA examples (they are learnt from the text rows only); NQ
    questions are locality data, never edited, so they stay training examples."""
    rows = []
    for f in world.facts:
        if f.split == "dev":
            continue
        r = RELATIONS_BY_NAME[f.relation]
        rows += [{"question": r.question(i, f.subject), "answer": f.object} for i in range(len(r.questions))]
    return rows


def pretrain_fever_rows(world: World) -> list[dict]:
    """Claim classification examples of BERT: every TRAIN person fact with every claim template, true (label 1)
    and false (label 0, its wrong object). Dev claims are never classification examples."""
    rows = []
    for f in world.split_facts("train"):
        r = RELATIONS_BY_NAME[f.relation]
        for i in range(len(r.claims)):
            rows.append({"claim": r.claim(i, f.subject, f.object), "label": 1})
            rows.append({"claim": r.claim(i, f.subject, f.wrong_object), "label": 0})
    return rows


WORLD_FILES: dict[str, str] = {
    "zsre_train": "zsre/structured_zeroshot-train-new_annotated_final.jsonl",
    "zsre_dev": "zsre/structured_zeroshot-dev-new_annotated_final.jsonl",
    "fever_train": "fever/fever-train-kilt.jsonl",
    "fever_dev": "fever/fever-dev-kilt.jsonl",
    "nq_train": "nq/train.json",
    "nq_dev": "nq/dev.json",
    "wiki_train": "wikitext/wiki.train.raw",
    "wiki_valid": "wikitext/wiki.valid.raw",
    "pretrain_qa": "pretrain/zsre_qa_train.jsonl",
    "pretrain_fever": "pretrain/fever_train.jsonl",
    "pretrain_text": "pretrain/text.jsonl",
    "world": "world.json",
}


def world_summary(world: World) -> dict:
    """The content of `world.json`: config, counts, relations and templates, file layout."""
    return {
        "config": asdict(world.config),
        "counts": {
            "subjects": len(world.subjects),
            "objects": {t: len(v) for t, v in world.objects.items()},
            "facts": len(world.facts),
            "person_facts": len(world.splits["train"]) + len(world.splits["dev"]),
            "nq_facts": len(world.splits["nq"]),
            "zsre_train": len(world.splits["train"]),
            "zsre_dev": len(world.splits["dev"]),
            "nq_train": len(world.splits["nq"]) // 2,
            "nq_dev": len(world.splits["nq"]) - len(world.splits["nq"]) // 2,
            "wiki_train_articles": len(world.wiki_train),
            "wiki_valid_articles": len(world.wiki_valid),
        },
        "relations": [asdict(r) for r in world.relations],
        "nq_relations": [asdict(r) for r in world.nq_relations],
        "files": dict(WORLD_FILES),
    }


def write_world(world: World, out_dir: Path) -> dict[str, Path]:
    """Write every world file under `out_dir`, each atomically; returns name -> path (keys of WORLD_FILES)."""
    out_dir = Path(out_dir)
    paths = {k: out_dir / v for k, v in WORLD_FILES.items()}
    for split in ("train", "dev"):
        facts = world.split_facts(split)
        write_jsonl_atomic(paths[f"zsre_{split}"], (zsre_record(f) for f in facts))
        write_jsonl_atomic(paths[f"fever_{split}"], (fever_record(f) for f in facts))
    nq = world.split_facts("nq")
    half = len(nq) // 2
    write_json_atomic(paths["nq_train"], nq_file(nq[:half]), indent=None)
    write_json_atomic(paths["nq_dev"], nq_file(nq[half:]), indent=None)
    atomic.write_text(paths["wiki_train"], wikitext_raw(world.wiki_train))
    atomic.write_text(paths["wiki_valid"], wikitext_raw(world.wiki_valid))
    write_jsonl_atomic(paths["pretrain_qa"], pretrain_qa_rows(world))
    write_jsonl_atomic(paths["pretrain_fever"], pretrain_fever_rows(world))
    write_jsonl_atomic(paths["pretrain_text"], pretrain_text_rows(world))
    write_json_atomic(paths["world"], world_summary(world))
    return paths


def all_world_texts(world: World) -> list[str]:
    """Every string the world can emit (names, questions, answers, claims, wiki text), for the vocabulary."""
    texts: list[str] = list(world.subjects)
    for names in world.objects.values():
        texts += names
    for f in world.facts:
        r = RELATIONS_BY_NAME[f.relation]
        texts += [r.question(i, f.subject) for i in range(len(r.questions))]
        for o in (f.object, f.wrong_object):
            texts += [r.claim(i, f.subject, o) for i in range(len(r.claims))]
        texts += [r.statement(i, f.subject, f.object) for i in range(len(r.statements))]
    for a in (*world.wiki_train, *world.wiki_valid):
        texts.append(f"= {a.title} =")
        texts += a.paragraphs
    return texts
