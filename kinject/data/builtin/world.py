"""The built-in benchmark: a seeded fictional world no pretrained model can know.

People (birth year, hometown, profession, employer) and organisations (founding year,
headquarters, founder, product). One article per entity, one sentence per fact. Entities are
split into train and test; each split has its own organisations, cities and founders, so no
entity, name or fact crosses it. The test split is the knowledge to inject; the train split
serves few-shot prompts, paraphraser training and QA demonstrations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from kinject.checks import Check, at_least, check_section, one_of, seed_range
from kinject.data.builtin.names import NameMaker
from kinject.data.builtin.templates import ORG_SUFFIXES, PRODUCTS, PROFESSIONS, RELATIONS, Relation, fill
from kinject.data.schema import Corpus, Document, Fact, Probe

MIN_POOL = 4


@dataclass
class BuiltinConfig:
    """Sizes of the fictional world. ``seed`` None means: use the run's seed.

    ``demo_questions``: how the train split's QA demonstrations (``Corpus.train_qa``) are worded:
    ``disjoint`` (templates no probe uses) or ``shared`` (the probes' own question templates).
    """

    seed: int | None = None
    test_people: int = 16
    test_orgs: int = 8
    train_people: int = 32
    train_orgs: int = 16
    paraphrases: int = 10
    fewshot: int = 5
    demo_questions: str = "disjoint"

    CHECKS: ClassVar[dict[str, Check]] = {
        "seed": seed_range, "test_people": at_least(1), "test_orgs": at_least(1), "train_people": at_least(1),
        "train_orgs": at_least(1), "paraphrases": at_least(0), "fewshot": at_least(0),
        "demo_questions": one_of("disjoint", "shared")}


@dataclass
class _Entity:
    id: str
    kind: str
    name: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class _Split:
    entities: list[_Entity]
    pools: dict[str, list[str]]


def _make_split(tag: str, n_people: int, n_orgs: int, names: NameMaker, rng: random.Random) -> _Split:
    orgs = [_Entity(f"{tag}-org{i}", "organisation", f"{names.word(2)} {rng.choice(ORG_SUFFIXES)}")
            for i in range(n_orgs)]
    people = [_Entity(f"{tag}-person{i}", "person", names.person()) for i in range(n_people)]
    n_cities = max(6, (n_people + n_orgs) // 2)
    # Name pools hold at least MIN_POOL values so every MCQ gets three distractors; in worlds with
    # fewer organisations than that the extra names are invented but appear in no document.
    org_names = [o.name for o in orgs]
    org_names += [f"{names.word(2)} {rng.choice(ORG_SUFFIXES)}" for _ in range(MIN_POOL - len(org_names))]
    pools = {
        "birth_year": [str(y) for y in range(1931, 2005)],
        "founded_year": [str(y) for y in range(1850, 2016)],
        "city": [names.city() for _ in range(n_cities)],
        "profession": list(PROFESSIONS),
        "product": list(PRODUCTS),
        "organisation": org_names,
        "founder": [names.person() for _ in range(max(n_orgs, MIN_POOL))],
    }
    for i, org in enumerate(orgs):
        org.values = {
            "founded": rng.choice(pools["founded_year"]),
            "headquarters": rng.choice(pools["city"]),
            "founder": pools["founder"][i],
            "product": rng.choice(pools["product"]),
        }
    for person in people:
        person.values = {
            "birth_year": rng.choice(pools["birth_year"]),
            "hometown": rng.choice(pools["city"]),
            "profession": rng.choice(pools["profession"]),
            "employer": rng.choice(org_names[: len(orgs)]) if orgs else "",
        }
    return _Split(orgs + people, pools)


def _relations(kind: str) -> list[Relation]:
    return [r for r in RELATIONS if r.kind == kind]


def _realise(entity: _Entity, choose: list[int], order: list[int]) -> tuple[str, list[str]]:
    """Article text and its per-relation sentences, given template indices and sentence order."""
    rels = _relations(entity.kind)
    sentences = [fill(r.documents[t], entity.name, entity.values[r.name]) for r, t in zip(rels, choose)]
    return " ".join(sentences[i] for i in order), sentences


def _distractors(answer: str, pool: list[str], n: int, rng: random.Random) -> list[str]:
    others = sorted(set(pool) - {answer})
    return rng.sample(others, min(n, len(others)))


def build_world(cfg: BuiltinConfig, seed: int) -> Corpus:
    """Generate the benchmark corpus for ``seed`` (deterministic)."""
    check_section(cfg, "data.builtin")
    rng = random.Random(seed)
    names = NameMaker(rng)
    test = _make_split("test", cfg.test_people, cfg.test_orgs, names, rng)
    train = _make_split("train", cfg.train_people, cfg.train_orgs, names, rng)

    documents: list[Document] = []
    paraphrases: dict[str, list[str]] = {}
    facts: list[Fact] = []
    probes: list[Probe] = []
    for ent in test.entities:
        rels = _relations(ent.kind)
        choose = [rng.randrange(len(r.documents)) for r in rels]
        order = rng.sample(range(len(rels)), len(rels))
        text, sentences = _realise(ent, choose, order)
        documents.append(Document(ent.id, text, title=ent.name))
        variants: list[str] = []
        for _ in range(cfg.paraphrases):
            alt = [(c + 1 + rng.randrange(len(r.documents) - 1)) % len(r.documents) for r, c in zip(rels, choose)]
            variants.append(_realise(ent, alt, rng.sample(range(len(rels)), len(rels)))[0])
        paraphrases[ent.id] = variants
        for rel, sentence in zip(rels, sentences):
            answer = ent.values[rel.name]
            fid = f"{ent.id}/{rel.name}"
            facts.append(Fact(fid, ent.id, sentence, answer, subject=ent.name, relation=rel.name,
                              answer_start=sentence.rfind(answer), entities=[ent.name]))
            question = fill(rng.choice(rel.questions), ent.name, answer)
            probes.append(Probe(f"{fid}/qa", "qa", question, [answer], fact_id=fid, doc_id=ent.id))
            options = [answer, *_distractors(answer, test.pools[rel.value], 3, rng)]
            rng.shuffle(options)
            probes.append(Probe(f"{fid}/mcq", "mcq", question, [answer], choices=options,
                                label=options.index(answer), fact_id=fid, doc_id=ent.id))
            probes.append(Probe(f"{fid}/cloze", "cloze", fill(rel.cloze, ent.name, answer), [answer],
                                fact_id=fid, doc_id=ent.id))

    train_facts: list[Fact] = []
    train_paraphrases: dict[str, list[str]] = {}
    train_qa: list[Probe] = []
    demo_qa: list[Probe] = []  # the same facts asked in the demonstration wordings
    demo_rng = random.Random(f"demo-questions/{seed}")  # apart, so the rest of the world stays as it was
    for ent in train.entities:
        for rel in _relations(ent.kind):
            answer = ent.values[rel.name]
            fid = f"{ent.id}/{rel.name}"
            realisations = [fill(t, ent.name, answer) for t in rel.documents]
            first = rng.randrange(len(realisations))
            text = realisations[first]
            train_facts.append(Fact(fid, ent.id, text, answer, subject=ent.name, relation=rel.name,
                                    answer_start=text.rfind(answer), entities=[ent.name]))
            train_paraphrases[fid] = realisations[:first] + realisations[first + 1:]
            train_qa.append(Probe(f"{fid}/qa", "qa", fill(rng.choice(rel.questions), ent.name, answer),
                                  [answer], fact_id=fid, doc_id=ent.id))
            demo_qa.append(Probe(f"{fid}/qa", "qa", fill(demo_rng.choice(rel.demonstrations), ent.name, answer),
                                 [answer], fact_id=fid, doc_id=ent.id))

    by_relation: dict[str, Probe] = {}
    for probe in rng.sample(train_qa, len(train_qa)):
        by_relation.setdefault(probe.fact_id.split("/")[1], probe)
    fewshot = [(p.question, p.answers[0]) for p in list(by_relation.values())[: cfg.fewshot]]

    return Corpus(
        name="builtin",
        documents=documents,
        probes=probes,
        facts=facts,
        paraphrases=paraphrases,
        fewshot=fewshot,
        train_facts=train_facts,
        train_paraphrases=train_paraphrases,
        train_qa=demo_qa if cfg.demo_questions == "disjoint" else train_qa,
        meta={"world_seed": seed, "demo_questions": cfg.demo_questions, "test_entities": len(test.entities),
              "train_entities": len(train.entities)},
    )
