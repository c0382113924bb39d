"""``+qa``: demonstrations disjoint from the probes, their wording, the training mix, bad input."""

import json
import re

import pytest

from kinject import bench
from kinject.config import load_config
from kinject.data.builtin.templates import RELATIONS
from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.data.demonstrations import QAConfig, select_demonstrations
from kinject.data.loaders import load_lapael_squad
from kinject.errors import UserError
from kinject.evaluation.metrics import tokens
from kinject.evaluation.runner import qa_header
from kinject.methods import get_method
from kinject.training.trainer import Completion
from tests.conftest import FIXTURES
from tests.test_bench import TINY_WORLD

RELATIONS_BY_NAME = {r.name: r for r in RELATIONS}


def _key(text):
    return " ".join(tokens(text))


def _pairs(demos):
    """(question, answer) of each demonstration text (its last block), documents left out."""
    out = []
    for text in map(str, demos.texts):
        m = re.search(r"Question: ([^\n]*)\nAnswer: ([^\n]*)\Z", text)  # the pair, after any header
        if m:
            out.append(m.groups())
    return out


def _assert_disjoint(corpus, demos):
    questions = {_key(p.question) for p in corpus.probes}
    answers = {_key(a) for p in corpus.probes for a in p.answers}
    docs = {_key(d.text) for d in corpus.documents}
    subjects = {_key(f.subject) for f in corpus.facts if f.subject}
    pairs = _pairs(demos)
    assert pairs, "no demonstration was selected"
    for q, a in pairs:
        assert _key(q) not in questions, q
        assert _key(a) not in answers, a
        assert not any(f" {s} " in f" {_key(q)} " for s in subjects), q
    for text in map(str, demos.texts):
        assert _key(text) not in docs, text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_builtin_demonstrations_touch_no_probe(seed):
    corpus = build_world(BuiltinConfig(), seed)
    demos = select_demonstrations(corpus, QAConfig(ratio=None), seed)
    _assert_disjoint(corpus, demos)
    info = demos.info
    assert info["demonstrations"] == info["usable"] == info["pairs"] - sum(info["dropped"].values())
    assert info["dropped"].get("answer", 0) > 0  # years and professions recur across the split: caught
    assert info["documents"] == info["demonstrations"]  # each pair's own train sentence comes along


@pytest.mark.parametrize("mode", ["mixed", "before", "after"])
def test_each_mode_trains_every_demonstration_text_once_in_its_phase(mode):
    demos = select_demonstrations(build_world(BuiltinConfig(), 0), QAConfig(mode=mode), 0)
    before, mixed, after = demos.phases()
    assert sorted(before + mixed + after, key=str) == sorted(demos.pairs + demos.documents, key=str)
    assert demos.pairs and demos.documents
    if mode == "after":  # the facts first (with the method's texts), then the questions about them
        assert mixed == demos.documents and after == demos.pairs and not before
    else:
        assert (before if mode == "before" else mixed) == demos.texts


def test_answer_loss_keeps_each_question_as_a_prompt_only():
    corpus = build_world(BuiltinConfig(), 0)
    plain = select_demonstrations(corpus, QAConfig(loss="all"), 0)
    answer_only = select_demonstrations(corpus, QAConfig(), 0)
    assert answer_only.info["loss"] == "answer" and answer_only.documents == plain.documents
    assert len(answer_only.pairs) == len(plain.pairs) > 0
    for text, pair in zip(plain.pairs, answer_only.pairs):
        assert isinstance(pair, Completion) and pair.prompt.endswith("\nAnswer:")
        assert str(pair) == str(text)  # the same pair, only its loss differs


@pytest.mark.parametrize("loss", ["answer", "all"])
def test_header_puts_each_pair_behind_the_evaluation_prompt_and_drops_copies(loss):
    corpus = build_world(BuiltinConfig(), 0)
    header = qa_header(corpus.instruction, corpus.fewshot)
    bare = select_demonstrations(corpus, QAConfig(loss=loss, ratio=None, header=False), 0)
    demos = select_demonstrations(corpus, QAConfig(loss=loss, ratio=None, header=True), 0)
    shown = {_key(a) for _, a in corpus.fewshot}
    assert demos.info["dropped"]["in_header"] > 0 and "in_header" not in bare.info["dropped"]
    assert len(demos.pairs) == len(bare.pairs) - demos.info["dropped"]["in_header"]
    bare_texts = set(map(str, bare.pairs))
    for text in demos.pairs:
        assert isinstance(text, Completion) and text.prompt.startswith(header)  # the header is never a target
        pair = str(text)[len(header):]
        assert pair in bare_texts  # after the header, the pair as it is trained without one
        assert _key(pair.rsplit("\nAnswer: ", 1)[1]) not in shown  # no answer to copy from the examples
        assert (text.prompt == header) == (loss == "all")  # loss all: the question is a target too


def test_the_control_trains_the_same_documents_without_their_questions(tmp_path):
    corpus = build_world(BuiltinConfig(), 0)
    demos, control = (select_demonstrations(corpus, QAConfig(pairs=p), 0) for p in (True, False))
    assert control.pairs == [] and control.documents == demos.documents and demos.pairs
    assert control.info["trained_pairs"] == 0 < demos.info["trained_pairs"]
    assert control.phases() == (demos.documents, [], [])
    no_context = tmp_path / "qa.jsonl"
    no_context.write_text('{"question": "What colour is the sky on Zeta?", "answer": "Mauve"}\n')
    with pytest.raises(UserError, match=r"qa\.pairs is false"):
        select_demonstrations(corpus, QAConfig(source=str(no_context), pairs=False), 0)


def test_source_paraphrases_come_along_and_touch_no_probe():
    corpus = build_world(BuiltinConfig(), 0)
    demos = select_demonstrations(corpus, QAConfig(ratio=None, paraphrases=3), 0)
    _assert_disjoint(corpus, demos)
    assert demos.info["documents"] == 4 * demos.info["demonstrations"]  # the sentence and 3 rephrasings
    facts = {f.id: f for f in corpus.train_facts}
    chosen = [p for p in corpus.train_qa if f"{p.question}" in " ".join(map(str, demos.texts))]
    some = facts[chosen[0].fact_id]
    assert all(t in demos.texts for t in corpus.train_paraphrases[some.id][:3])


def test_squad_demonstrations_touch_no_probe():
    corpus = load_lapael_squad(FIXTURES / "lapael-squad")
    demos = select_demonstrations(corpus, QAConfig(), 0)
    _assert_disjoint(corpus, demos)
    assert demos.info["demonstrations"] == min(demos.info["usable"], len(corpus.facts))  # ratio 1: one per fact


def _templates(corpus):
    """The template each train QA question was filled from, and its relation."""
    facts = {f.id: f for f in corpus.train_facts}
    return [(p.question.replace(facts[p.fact_id].subject, "{s}"), RELATIONS_BY_NAME[facts[p.fact_id].relation])
            for p in corpus.train_qa]


def test_disjoint_wording_uses_no_probe_template_and_leaves_the_world_as_it_was():
    disjoint = build_world(BuiltinConfig(), 0)
    shared = build_world(BuiltinConfig(demo_questions="shared"), 0)
    assert disjoint.content_hash() == shared.content_hash() and disjoint.fewshot == shared.fewshot
    assert [p.answers for p in disjoint.train_qa] == [p.answers for p in shared.train_qa]
    assert all(t in rel.demonstrations and t not in rel.questions for t, rel in _templates(disjoint))
    assert all(t in rel.questions for t, rel in _templates(shared))


def test_every_kind_of_overlap_is_dropped_and_counted(tmp_path):
    corpus = build_world(BuiltinConfig(test_people=2, test_orgs=1, train_people=2, train_orgs=1), 0)
    probe = corpus.probes_of("qa")[0]
    fact = next(f for f in corpus.facts if f.id == probe.fact_id)
    rows = [
        {"question": probe.question, "answer": "Nowhere Land"},                      # a probe's question
        {"question": "Who painted the moon?", "answer": probe.answers[0]},            # a probe's answer
        {"question": f"Is {fact.subject} tall?", "answer": "Yes, very tall"},        # a probed subject
        {"question": "Where is it?", "answer": "Under the bridge", "context": corpus.documents[0].text},
        {"question": "What colour is the sky on Zeta?", "answer": "Mauve", "context": "Zeta has a mauve sky."},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    demos = select_demonstrations(corpus, QAConfig(source=str(path), ratio=None, header=False), 0)
    assert demos.info["dropped"] == {"question": 1, "answer": 1, "subject": 1, "document": 1}
    assert [str(t) for t in demos.texts] == ["Question: What colour is the sky on Zeta?\nAnswer: Mauve",
                                             "Zeta has a mauve sky."]


def test_bad_demonstration_settings_are_one_line_errors(tmp_path):
    corpus = build_world(BuiltinConfig(test_people=2, test_orgs=1, train_people=2, train_orgs=1), 0)
    with pytest.raises(UserError, match=r"qa\.mode"):
        select_demonstrations(corpus, QAConfig(mode="later"), 0)
    with pytest.raises(UserError, match="no such file"):
        select_demonstrations(corpus, QAConfig(source=str(tmp_path / "missing.jsonl")), 0)
    with pytest.raises(UserError, match=r"'qa\.loss': 'question' is not one of all, answer"):
        select_demonstrations(corpus, QAConfig(loss="question"), 0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A"}\n{"question": "no answer"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: missing field 'answers'"):
        select_demonstrations(corpus, QAConfig(source=str(bad)), 0)
    with pytest.raises(UserError, match="trains nothing"):
        get_method("rag+qa")
    with pytest.raises(UserError, match="demo_questions"):
        build_world(BuiltinConfig(demo_questions="same"), 0)


def _run(tiny_model_dir, tmp_path, *extra):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "eval.kinds=[qa]", *extra])
    return bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)


@pytest.mark.parametrize("mode,loss", [("mixed", "all"), ("before", "all"), ("after", "all"), ("mixed", "answer")])
def test_plus_qa_trains_the_demonstrations_with_before_or_after_the_documents(tiny_model_dir, tmp_path, mode, loss):
    results = _run(tiny_model_dir, tmp_path, "methods=[ft,ft+qa]", f"qa.mode={mode}", f"qa.loss={loss}", "qa.epochs=1")
    ft, ftqa = (results["methods"][m]["per_seed"]["0"] for m in ("ft", "ft+qa"))
    demos = ftqa["info"]["demonstrations"]
    assert demos["mode"] == mode and demos["loss"] == loss and demos["demonstrations"] > 0
    assert "demonstrations" not in ft["info"]
    assert ftqa["info"]["texts"] == ft["info"]["texts"]  # the method's own texts are unchanged
    assert ftqa["cost"]["train_tokens"] > ft["cost"]["train_tokens"]
    assert ftqa["cost"]["train_steps"] > ft["cost"]["train_steps"]
    comp = results["comparisons"]["ft+qa"]
    assert comp["against"] == "ft" and comp["seeds"] == [0]
    assert comp["mean"]["train_tokens"] == ftqa["cost"]["train_tokens"] - ft["cost"]["train_tokens"]
    assert "ft+qa vs ft" in (tmp_path / "run" / "report.md").read_text()
