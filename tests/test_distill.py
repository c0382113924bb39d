"""Context distillation: the loss, the rows, the prompts, the teacher's cached targets, the method."""

import itertools
import math

import pytest
import torch

from kinject import bench
from kinject.config import load_config
from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.data.schema import Corpus, Document, Probe
from kinject.distill.config import DistillConfig
from kinject.distill.loss import distillation_loss
from kinject.distill.prompts import (
    TRIVIA_EXAMPLES,
    TRIVIA_PROMPT,
    DistillPrompt,
    build_prompts,
    continuation_prompts,
    templated_prompts,
    trivia_questions,
)
from kinject.distill.teacher import RowSampler, TeacherPrompt, TeacherTargets, teacher_targets
from kinject.errors import UserError
from kinject.generation.generators import GenerationConfig
from kinject.methods.distill import _teacher_prompts, check_distill, grounded_rows
from kinject.training.trainer import DISTILL_FORMS, Distilled, _Collator, training_rows
from tests.test_bench import TINY_WORLD


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))


def _one_position(student: torch.Tensor, teacher_ids, teacher_logp, form: str, temperature: float = 1.0):
    """A batch of one row whose only label is at position 1 (predicted by logits at 0)."""
    logits = torch.stack([student, torch.zeros_like(student)])[None]  # (1, 2, V)
    labels = torch.tensor([[-100, int(teacher_ids[0])]])
    ids = torch.tensor([[[-1] * len(teacher_ids), list(teacher_ids)]])
    logp = torch.tensor([[[0.0] * len(teacher_ids), list(teacher_logp)]])
    return distillation_loss(logits, labels, ids, logp, torch.tensor([DISTILL_FORMS.index(form)]),
                             torch.tensor([temperature])).item()


def test_forward_kl_is_zero_when_the_student_matches_the_teacher_and_grows_apart():
    v = torch.log(torch.tensor([0.6, 0.3, 0.1, 1e-9]))
    assert _one_position(v, [0, 1, 2], v[:3].tolist(), "forward_kl") == pytest.approx(0.0, abs=1e-5)
    flat = torch.zeros(4)  # uniform student: KL = sum p log(p / 0.25)
    expect = sum(p * math.log(p / 0.25) for p in (0.6, 0.3, 0.1))
    assert _one_position(flat, [0, 1, 2], v[:3].tolist(), "forward_kl") == pytest.approx(expect, abs=1e-5)
    assert _one_position(flat, [0, 1, 2], v[:3].tolist(), "reverse_kl") > 0
    assert _one_position(flat, [0, 1, 2], v[:3].tolist(), "ce") == pytest.approx(math.log(4), abs=1e-5)
    # a higher temperature softens both sides: the gap to a uniform student shrinks
    assert _one_position(flat, [0, 1, 2], v[:3].tolist(), "forward_kl", 2.0) < expect


def test_rows_without_a_teacher_get_the_plain_next_token_loss():
    logits = torch.randn(1, 3, 5)
    labels = torch.tensor([[-100, 2, 4]])
    none = torch.full((1, 3, 2), -1)
    loss = distillation_loss(logits, labels, none, torch.zeros(1, 3, 2), torch.tensor([1]))
    plain = torch.nn.functional.cross_entropy(logits[0, :2], labels[0, 1:])
    assert loss.item() == pytest.approx(plain.item(), abs=1e-5)


def test_distilled_rows_train_the_answer_only_with_aligned_teacher_targets():
    row = Distilled((5, 6, 7), (8, 9), ((8, 1), (9, 2)), ((-0.1, -2.0), (-0.2, -1.5)), "forward_kl")
    tok = type("Tok", (), {"eos_token_id": 0})()
    [r] = training_rows(tok, [row], max_length=16)
    assert r["input_ids"] == [5, 6, 7, 8, 9] and r["labels"] == [-100, -100, -100, 8, 9]
    assert r["teacher_ids"][3:] == [[8, 1], [9, 2]] and r["teacher_ids"][0] == [-1, -1]
    [cut] = training_rows(tok, [row], max_length=3)  # the prompt is cut from the left, the answer kept
    assert cut["input_ids"] == [7, 8, 9] and cut["labels"] == [-100, 8, 9]
    batch = _Collator(pad_id=0)([r, {"input_ids": [1, 2], "labels": [1, 2]}])
    assert batch["teacher_ids"].shape == (2, 5, 2) and batch["distill_form"].tolist() == [1, 0]
    assert (batch["teacher_ids"][1] == -1).all() and batch["labels"][1].tolist() == [1, 2, -100, -100, -100]


def test_templated_and_continuation_prompts_and_the_per_document_cap():
    world = build_world(BuiltinConfig(test_people=2, test_orgs=1, train_people=2, train_orgs=1), 3)
    templated = templated_prompts(world)
    assert len(templated) == 2 * len(world.facts)  # two demonstration wordings a relation
    probe_questions = {p.question for p in world.probes}
    assert not probe_questions & {p.text for p in templated}  # wordings no probe uses
    cont = continuation_prompts(world)
    docs = {d.id: d.text for d in world.documents}
    assert cont and all(docs[p.doc_id].count(p.text) >= 1 and p.kind == "continuation" for p in cont)
    chosen, info = build_prompts(world, DistillConfig(per_document=3), GenerationConfig())
    assert len(chosen) == 3 * len(world.documents) and info["prompts"] == len(chosen)
    assert "templated" in info["note"]


def test_teacher_targets_are_cached_per_prompt(tiny, tmp_path):
    prompts = [TeacherPrompt("Context: Ada lives in Oslo.\nQuestion: Where does Ada live?\nAnswer:",
                             "Question: Where does Ada live?\nAnswer:"),
               TeacherPrompt("Context: Bo sells clocks.\nBo sells", "Bo sells")]
    cfg = DistillConfig(max_new_tokens=4, top_k=3)
    first = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path / "d", progress=False)
    assert first.cost.requests == 2 and first.cost.cached == 0 and first.cost.completion_tokens > 0
    for row, p in zip(first.rows, prompts):
        assert list(row.prompt_ids) == tiny.tokenizer(p.student).input_ids
        assert len(row.top_ids) == len(row.answer_ids) and all(len(t) == 3 for t in row.top_ids)
        assert all(a >= b for t in row.top_logprobs for a, b in itertools.pairwise(t))  # most likely first
    # the greedy answer is the teacher's most likely token at each step
    assert all(row.answer_ids[i] == row.top_ids[i][0] for row in first.rows for i in range(len(row.answer_ids)))
    again = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path / "d", progress=False)
    assert again.cost.cached == 2 and again.cost.seconds == first.cost.seconds and again.rows == first.rows


def test_a_sampled_answer_depends_on_its_own_prompt_and_seed_not_on_its_batch(tiny, tmp_path):
    ada = TeacherPrompt("Context: Ada lives in Oslo.\nAda lives in", "Ada lives in")
    bo = TeacherPrompt("Context: Bo sells clocks.\nBo sells", "Bo sells")
    cfg = DistillConfig(max_new_tokens=6, top_k=3, answer="sample", answer_temperature=5.0)

    def answer(prompts, cache, seed=0):
        cfg.seed = seed
        rows = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path / cache, progress=False).rows
        return rows[-1].answer_ids

    alone = answer([ada], "a")
    assert answer([bo, ada], "b") == alone  # asked beside an uncached prompt, at another offset
    assert any(answer([ada], f"s{s}", seed=s) != alone for s in range(1, 4))  # the seed does change it


def test_distill_in_a_bench_beside_ft(tiny_model_dir, tmp_path):
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "methods=[ft,distill]", "distill.epochs=1",
                             "distill.per_document=2", "distill.max_new_tokens=3",
                             "distill.filter=none"])  # the tiny model's answers are found in no document
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    ft, cell = (results["methods"][m]["per_seed"]["0"] for m in ("ft", "distill"))
    info = cell["info"]["distill"]
    assert info["queries"] == "templated" and info["prompts"] == 2 * 3 and info["teacher"]["requests"] == 6
    assert cell["cost"]["train_steps"] > 0 and 0 <= cell["metrics"]["qa.accuracy"] <= 1
    assert cell["info"]["texts"] == 3 + info["rows"]  # the documents mixed in
    assert cell["cost"]["train_tokens"] > ft["cost"]["train_tokens"]
    assert cell["cost"]["teacher_tokens"] > 0 and cell["cost"]["teacher_seconds"] > 0
    assert ft["cost"]["teacher_tokens"] == 0 and ft["cost"]["teacher_seconds"] == 0


def test_bad_distill_input_is_refused_before_any_work():
    plain = Corpus("mine", [Document("a", "Some text here.")], [Probe("p", "qa", "Q?", ["x"], doc_id="a")])
    cfg = load_config(None, [])
    with pytest.raises(UserError, match=r"distill\.queries=templated: corpus 'mine' has no built-in facts"):
        check_distill(plain, cfg)
    cfg = load_config(None, ["distill.queries=continuation", "train.packing=true"])
    with pytest.raises(UserError, match=r"train\.packing"):
        check_distill(plain, cfg)
    with pytest.raises(UserError, match=r"distill\.loss"):
        load_config(None, ["distill.loss=kl"])


def test_generated_and_self_study_prompts_come_from_the_generator(tiny_chat_model_dir):
    from kinject.distill.prompts import SELF_STUDY_SEEDS, generated_prompts, self_study_prompts
    from kinject.generation.generators import LocalGenerator, Sampled

    world = build_world(BuiltinConfig(test_people=1, test_orgs=1, train_people=1, train_orgs=1), 4)
    doc = world.documents[0]
    fact = next(f for f in world.facts if f.doc_id == doc.id)
    replies = {"question": f"Question: Where is {fact.subject} from?\nAnswer: {fact.answer}\nWrong: a; b; c",
               "study": "Summarise the first sentence of the text.\nMore text."}
    seen = []

    def fake(self, requests, n):
        seen.extend(requests)
        kind = "question" if "Write one question that the text answers" in requests[0][0]["content"] else "study"
        return [Sampled([replies[kind]] * n, 1, 1) for _ in requests]

    gen = GenerationConfig(model=str(tiny_chat_model_dir), cache=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalGenerator, "sample", fake)
        asked, info = generated_prompts(world, 2, gen)
        assert {p.text for p in asked if p.doc_id == doc.id} == {f"Where is {fact.subject} from?"}
        study, info = self_study_prompts(world, 3, gen)
    assert [p.text for p in study if p.doc_id == doc.id] == ["Summarise the first sentence of the text."]
    assert info["dropped"] == 2 * 3 * len(world.documents) - len(world.documents)  # duplicates of the same line
    kinds = {m[0]["content"].split(" Reply with")[0] for m in seen if "Reply with the request only" in m[0]["content"]}
    assert kinds == set(SELF_STUDY_SEEDS)


def test_trivia_prompts_ask_for_enough_replies_and_keep_each_documents_distinct_questions(tiny_chat_model_dir):
    from kinject.distill.prompts import TRIVIA_PROMPT, trivia_prompts
    from kinject.generation.generators import LocalGenerator, Sampled

    world = build_world(BuiltinConfig(test_people=1, test_orgs=1, train_people=1, train_orgs=1), 4)
    asked = []

    def fake(self, requests, n):
        asked.append((requests, n))
        tagged = "<question>Who founded the firm in 1990?</question>\n<question>Where is it based?</question>"
        return [Sampled([tagged, "no questions here", tagged][:n], 1, 1) for _ in requests]

    gen = GenerationConfig(model=str(tiny_chat_model_dir), cache=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalGenerator, "sample", fake)
        prompts, info = trivia_prompts(world, 7, gen)  # 14 questions wanted: 3 replies of five
    [(requests, n)] = asked
    assert n == 3 and len(requests) == len(world.documents)
    assert requests[0][0]["content"] == TRIVIA_PROMPT.format(text=world.documents[0].text)
    assert [p.text for p in prompts if p.doc_id == world.documents[0].id] == [
        "Who founded the firm in 1990?", "Where is it based?"]  # the repeated reply adds nothing
    assert len(prompts) == 2 * len(world.documents) and info["replies_without_questions"] == len(world.documents)


def test_sequence_average_weighs_each_row_alike_whatever_its_length():
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, -100, 4]])  # 3 positions and 1
    none = torch.full((2, 4, 2), -1)
    args = (logits, labels, none, torch.zeros(2, 4, 2), torch.tensor([0, 0]))
    per = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1),
                                            reduction="none", ignore_index=-100).view(2, 3)
    first, second = per[0].mean().item(), per[1, 2].item()
    assert distillation_loss(*args).item() == pytest.approx((3 * first + second) / 4, abs=1e-5)
    sequence = distillation_loss(*args, distill_sequence=torch.tensor([True, False]))
    assert sequence.item() == pytest.approx((first + second) / 2, abs=1e-5)
    row = Distilled((5,), (8, 9), ((8, 1), (9, 2)), ((-0.1, -2.0), (-0.2, -1.5)), average="sequence")
    tok = type("Tok", (), {"eos_token_id": 0})()
    batch = _Collator(pad_id=0)([*training_rows(tok, [row], 8), {"input_ids": [1, 2], "labels": [1, 2]}])
    assert batch["distill_sequence"].tolist() == [True, False]


def test_row_sampler_top_k_draws_only_among_the_most_likely_tokens():
    scores = torch.tensor([[0.0, 3.0, 1.0, 2.9, -1.0]] * 2)
    for seed in range(20):
        drawn = RowSampler([seed, seed + 100], temperature=50.0, device=torch.device("cpu"), top_k=2)(None, scores)
        assert set(drawn.argmax(-1).tolist()) <= {1, 3}
    wide = {RowSampler([s], 50.0, torch.device("cpu"))(None, scores[:1]).argmax().item() for s in range(40)}
    assert wide - {1, 3}  # without top_k, a hot sample leaves the top two


def test_trivia_questions_are_read_from_their_tags_and_the_examples_dropped():
    reply = ("<question>Who founded  Acme Corp\nin 1990?</question> <question>Which planet is closest to the "
             "Sun?</question><question>Why?</question><question>Name the city</question>")
    assert trivia_questions(reply) == ["Who founded Acme Corp in 1990?"]
    untagged = "1. Which planet is closest to the Sun?\n2. Which company is based in Vrekir?\nA: Who runs it?\nNo."
    assert trivia_questions(untagged) == ["Which company is based in Vrekir?", "Who runs it?"]
    assert "{text}" in TRIVIA_PROMPT and all(q in TRIVIA_PROMPT for q in TRIVIA_EXAMPLES)


def test_the_chat_format_puts_context_and_question_in_the_chat_template(tiny_chat_model_dir, tmp_path):
    cfg = load_config(None, [f"model={tiny_chat_model_dir}", *TINY_WORLD, "methods=[distill]", "distill.epochs=1",
                             "distill.per_document=1", "distill.max_new_tokens=3", "distill.format=chat",
                             "distill.filter=none",
                             "distill.answer=sample", "distill.answer_top_k=5", "distill.average=sequence"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    info = results["methods"]["distill"]["per_seed"]["0"]["info"]["distill"]
    assert info["format"] == "chat" and info["rows"] >= 1
    from kinject.models import load_model

    loaded = load_model(str(tiny_chat_model_dir))
    world = build_world(BuiltinConfig(test_people=1, test_orgs=1, train_people=1, train_orgs=1), 0)
    req = type("Req", (), {"cfg": cfg, "corpus": world, "source": loaded, "workdir": tmp_path})()
    prompt = DistillPrompt(world.documents[0].id, "Who is it?", "question")
    [asked] = _teacher_prompts(req, [prompt], [[world.documents[0].text]])
    assert asked.templated and asked.teacher.startswith("<s>user: ")
    assert asked.student == "<s>user: Who is it?</s>\n<s>assistant: "
    assert world.documents[0].text + "\n\n---\n\nWho is it?" in asked.teacher


def test_chat_format_with_continuation_prompts_is_refused():
    world = build_world(BuiltinConfig(test_people=1, test_orgs=1, train_people=1, train_orgs=1), 0)
    cfg = load_config(None, ["distill.queries=continuation", "distill.format=chat"])
    with pytest.raises(UserError, match=r"distill\.format=chat .* continuation"):
        check_distill(world, cfg)


def test_the_cost_of_written_prompts_counts_as_generation():
    from kinject.methods.finetune import generation_cost

    written = {"requests": 3, "cached": 0, "prompt_tokens": 500, "completion_tokens": 200, "seconds": 4.5}
    cost = generation_cost({"distill": {"queries": "trivia", "generation": {"cost": written}}})
    assert (cost.prompt_tokens, cost.completion_tokens, cost.seconds) == (500, 200, 4.5)
    assert generation_cost({"distill": {"queries": "templated"}}).completion_tokens == 0


def test_the_grounded_filter_keeps_answers_found_in_the_context_and_every_continuation(tiny):
    def row(answer: str) -> Distilled:
        ids = tuple(tiny.tokenizer(answer, add_special_tokens=False).input_ids)
        return Distilled((1,), ids, tuple((t,) for t in ids), tuple((0.0,) for _ in ids), "ce")

    prompts = [DistillPrompt("d", "Where was Ada born?", "question"),
               DistillPrompt("d", "Where does Ada work?", "question"),
               DistillPrompt("d", "Ada was", "continuation"),
               DistillPrompt("d", "Who founded it?", "question")]
    contexts = [["Ada Lind was born in Port Emery.", "Ada works at Velt."]] * 4
    # prompt 3 gave no answer, so no row: rows map to prompts 0, 1 and 2 through `asked`
    targets = TeacherTargets(rows=[row(" port emery\n"), row(" Oslo"), row(" a painter")], asked=[0, 1, 2])
    kept = grounded_rows(targets, prompts, contexts, tiny.tokenizer)
    assert kept == [targets.rows[0], targets.rows[2]]  # Oslo is not in the context; the continuation stays
    assert grounded_rows(TeacherTargets(rows=[row(" Port")], asked=[3]), prompts, contexts, tiny.tokenizer)
    assert not grounded_rows(TeacherTargets(rows=[row(" Emery Port")], asked=[0]), prompts, contexts, tiny.tokenizer)
    # in the document, but the question's own words: dropped
    assert not grounded_rows(TeacherTargets(rows=[row(" Ada")], asked=[0]), prompts, contexts, tiny.tokenizer)


def test_within_one_ledger_a_teacher_target_costs_its_tokens_once(tiny, tmp_path):
    from kinject.generation.cache import pay_once

    prompts = [TeacherPrompt("Once upon a time", "Once upon a time")]
    cfg = DistillConfig(max_new_tokens=3, top_k=2)
    alone = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path, progress=False)
    ledger: set[str] = set()
    with pay_once(ledger):  # as a stream's updates: the second use is already paid
        first = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path, progress=False)
        again = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path, progress=False)
    assert first.cost.completion_tokens == alone.cost.completion_tokens > 0
    assert first.cost.seconds == alone.cost.seconds > 0
    assert again.cost.completion_tokens == again.cost.prompt_tokens == 0 and again.cost.seconds == 0
    assert again.cost.requests == 1 and again.rows == first.rows and len(ledger) == 1
    outside = teacher_targets(tiny.model, tiny.tokenizer, prompts, cfg, "tiny", tmp_path, progress=False)
    assert outside.cost.completion_tokens == alone.cost.completion_tokens  # no ledger: every use counts
