import re

import pytest

from kinject.data.builtin.names import is_real
from kinject.data.builtin.templates import RELATIONS
from kinject.data.builtin.world import BuiltinConfig, build_world

SMALL = BuiltinConfig(test_people=6, test_orgs=3, train_people=6, train_orgs=3, paraphrases=5)


def _words(template: str) -> list[list[str]]:
    """Runs of lower-cased words between slots."""
    return [re.findall(r"[a-z']+", part.lower()) for part in re.split(r"\{[a-z]\}", template)]


def _trigrams(template: str) -> set[tuple[str, ...]]:
    return {tuple(run[i: i + 3]) for run in _words(template) for i in range(len(run) - 2)}


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL, 7)


def test_world_is_deterministic_and_seed_dependent():
    a, b, c = build_world(SMALL, 3), build_world(SMALL, 3), build_world(SMALL, 4)
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()


def test_kinds_relations_and_templates():
    kinds = {r.kind for r in RELATIONS}
    assert len(kinds) >= 2 and len(RELATIONS) >= 4
    for rel in RELATIONS:
        assert len(set(rel.documents)) >= 10, rel.name
        assert rel.cloze not in rel.documents
        for t in rel.documents:
            assert t.index("{s}") < t.index("{o}"), f"{rel.name}: subject must come before the answer: {t}"


def test_questions_are_worded_unlike_every_document_template():
    doc_grams = set().union(*(_trigrams(t) for r in RELATIONS for t in r.documents))
    for rel in RELATIONS:
        for q in rel.questions:
            assert not (_trigrams(q) & doc_grams), (q, _trigrams(q) & doc_grams)


def test_demonstration_questions_are_worded_unlike_probes_and_documents():
    grams = set().union(*(_trigrams(t) for r in RELATIONS for t in (*r.documents, *r.questions, r.cloze)))
    for rel in RELATIONS:
        assert len(rel.demonstrations) >= 2 and not set(rel.demonstrations) & set(rel.questions)
        for q in rel.demonstrations:
            assert not (_trigrams(q) & grams), (q, _trigrams(q) & grams)


def test_sizes_and_probe_kinds(world):
    assert len(world.documents) == 9
    assert len(world.facts) == 36
    kinds = [p.kind for p in world.probes]
    assert kinds.count("qa") == kinds.count("mcq") == kinds.count("cloze") == 36
    assert len(world.fewshot) == 5


def test_mcq_has_four_distinct_same_type_choices(world):
    by_fact = {f.id: f for f in world.facts}
    for p in world.probes_of("mcq"):
        assert len(set(p.choices)) == 4 and p.choices[p.label] == p.answers[0]
        if by_fact[p.fact_id].relation in ("birth_year", "founded"):
            assert all(c.isdigit() for c in p.choices)


def test_documents_state_every_fact_and_paraphrases_differ(world):
    for fact in world.facts:
        doc = next(d for d in world.documents if d.id == fact.doc_id)
        assert fact.text in doc.text and fact.answer in fact.text
        assert fact.text[fact.answer_start:].startswith(fact.answer)
    for doc in world.documents:
        variants = world.paraphrases[doc.id]
        assert len(variants) == 5 and doc.text not in variants
        answers = [f.answer for f in world.facts if f.doc_id == doc.id]
        assert all(a in v for v in variants for a in answers)


def test_no_entity_or_name_crosses_the_split(world):
    test_names = {f.subject for f in world.facts} | {f.answer for f in world.facts if not f.answer.isdigit()}
    train_names = {f.subject for f in world.train_facts} | {f.answer for f in world.train_facts
                                                             if not f.answer.isdigit()}
    from kinject.data.builtin.templates import PRODUCTS, PROFESSIONS

    shared = (test_names & train_names) - set(PRODUCTS) - set(PROFESSIONS)
    assert not shared
    train_subjects = {f.subject for f in world.train_facts}
    for p in world.probes:
        assert not any(s in p.question for s in train_subjects)
    for q, _ in world.fewshot:
        assert not any(s in q for s in {f.subject for f in world.facts})


def test_invented_names_are_not_real(world):
    for fact in world.facts:
        for word in fact.subject.split():
            if word not in ("Industries", "Labs", "Works", "Group", "Systems", "Holdings", "Trading",
                            "Partners", "Manufacturing", "Collective"):
                assert not is_real(word), word
    assert is_real("Paris") and is_real("Smith") and is_real("Mary")
