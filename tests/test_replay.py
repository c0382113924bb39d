"""+replay and +anchor: the general texts, their rows and weights, the methods, bad input."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from kinject import bench
from kinject.config import load_config
from kinject.data.builtin.general import general_text
from kinject.distill.loss import distillation_loss
from kinject.generation.replay import Replay, ReplayConfig, load_openings, split_text
from kinject.training.trainer import DISTILL_FORMS, _Collator, training_rows
from tests.test_bench import TINY_WORLD


def test_a_rows_weight_scales_its_loss_and_zero_removes_it():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[-100, 2, 4], [-100, 1, 3]])
    ids = torch.randint(0, 5, (2, 3, 2))
    logp = torch.log_softmax(torch.randn(2, 3, 2), -1)
    form = torch.tensor([DISTILL_FORMS.index("forward_kl")] * 2)
    plain = distillation_loss(logits, labels, ids, logp, form)
    doubled = distillation_loss(logits, labels, ids, logp, form, distill_weight=torch.tensor([2.0, 2.0]))
    assert doubled.item() == pytest.approx(2 * plain.item(), rel=1e-5)
    only_first = distillation_loss(logits, labels, ids, logp, form, distill_weight=torch.tensor([1.0, 0.0]))
    first = distillation_loss(logits[:1], labels[:1], ids[:1], logp[:1], form[:1])
    assert only_first.item() == pytest.approx(first.item() / 2, rel=1e-5)  # the mean still counts its positions


def test_a_penalty_rows_loss_is_a_mean_of_its_own_added_to_the_methods():
    logits = torch.randn(3, 4, 6)
    labels = torch.tensor([[-100, 2, 4, 1], [-100, 1, 3, -100], [-100, 5, 0, 2]])
    ids = torch.randint(0, 6, (3, 4, 2))
    ids[0] = -1  # row 0: a plain text
    logp = torch.log_softmax(torch.randn(3, 4, 2), -1)
    form = torch.tensor([0, 1, 1])
    weight = torch.tensor([1.0, 1.0, 3.0])
    penalty = torch.tensor([False, False, True])
    got = distillation_loss(logits, labels, ids, logp, form, distill_weight=weight, distill_penalty=penalty)
    method = distillation_loss(logits[:2], labels[:2], ids[:2], logp[:2], form[:2])
    anchor = distillation_loss(logits[2:], labels[2:], ids[2:], logp[2:], form[2:])
    assert got.item() == pytest.approx(method.item() + 3.0 * anchor.item(), rel=1e-5)
    pooled = distillation_loss(logits, labels, ids, logp, form, distill_weight=weight)
    assert pooled.item() != pytest.approx(got.item())
    only = logits[2:].clone().requires_grad_()  # a batch of penalty rows alone: the method's mean is 0
    alone = distillation_loss(only, labels[2:], ids[2:], logp[2:], form[2:], distill_weight=weight[2:],
                              distill_penalty=penalty[2:])
    alone.backward()
    assert alone.item() == pytest.approx(3.0 * anchor.item(), rel=1e-5) and only.grad.abs().sum() > 0


def _student_grad(student: torch.Tensor, top: int, form: str) -> torch.Tensor:
    """The gradient of one position's loss on the student's logits when the teacher is the student."""
    logits = torch.stack([student, torch.zeros_like(student)])[None].clone().requires_grad_()  # (1, 2, V)
    logp = torch.log_softmax(student, -1).topk(top)
    labels = torch.tensor([[-100, int(logp.indices[0])]])
    ids = torch.stack([torch.full((top,), -1), logp.indices])[None]
    lps = torch.stack([torch.zeros(top), logp.values])[None]
    distillation_loss(logits, labels, ids, lps, torch.tensor([DISTILL_FORMS.index(form)])).backward()
    return logits.grad[0, 0]


def test_the_tail_kl_leaves_a_student_that_is_the_teacher_where_it_is_and_the_topk_one_does_not():
    student = torch.log_softmax(torch.randn(50, generator=torch.Generator().manual_seed(0)), -1)
    assert _student_grad(student, 5, "forward_kl_tail").abs().max() < 1e-6
    assert _student_grad(student, 5, "forward_kl").abs().max() > 1e-2  # pulls mass off the tail onto the top 5
    # apart from the teacher, the tail form is the exact KL over the top k and one outcome for the rest
    teacher = torch.log_softmax(torch.randn(50, generator=torch.Generator().manual_seed(1)), -1)
    top = teacher.topk(5)
    p, q = top.values.exp(), student[top.indices].exp()
    expect = (p * (p.log() - q.log())).sum() + (1 - p.sum()) * ((1 - p.sum()).log() - (1 - q.sum()).log())
    got = distillation_loss(torch.stack([student, torch.zeros(50)])[None], torch.tensor([[-100, int(top.indices[0])]]),
                            torch.stack([torch.full((5,), -1), top.indices])[None],
                            torch.stack([torch.zeros(5), top.values])[None],
                            torch.tensor([DISTILL_FORMS.index("forward_kl_tail")]))
    assert got.item() == pytest.approx(expect.item(), rel=1e-4) and got.item() > 0


def test_anchor_kl_picks_the_loss_form_and_a_run_recorded_before_it_resumes_as_it_ran():
    from kinject.config import RunConfig, same_config, saved_config
    from kinject.methods.registry import InjectRequest
    from kinject.methods.replay_mix import with_anchor

    cfg = RunConfig()
    assert with_anchor(InjectRequest(None, None, cfg, 0, None)).replay[0].loss == "forward_kl_tail"
    cfg.anchor.kl = "topk"
    assert with_anchor(InjectRequest(None, None, cfg, 0, None)).replay[0].loss == "forward_kl"
    now = load_config(overrides=["methods=[ft,ft-para+qa+anchor]"])
    before = now.to_dict()
    del before["anchor"]["kl"]
    assert saved_config(before).anchor.kl == "topk"  # what an anchor row recorded before anchor.kl ran
    assert not same_config(saved_config(before), now)
    topk = load_config(overrides=["methods=[ft,ft-para+qa+anchor]", "anchor.kl=topk"])
    assert same_config(saved_config(before), topk)
    before["methods"] = ["ft", "ft+replay"]  # no anchor row: the key's default changes nothing it ran
    assert saved_config(before).anchor.kl == "tail"
    assert same_config(saved_config(before), load_config(overrides=["methods=[ft,ft+replay]"]))


def test_anchor_form_penalty_marks_its_rows_and_the_batch_carries_the_mark(tiny, tmp_path):
    from kinject.config import RunConfig
    from kinject.methods.registry import InjectRequest
    from kinject.methods.replay_mix import with_anchor

    cfg = RunConfig()
    cfg.anchor.form = "penalty"
    (plan,) = with_anchor(InjectRequest(tiny, None, cfg, 0, tmp_path)).replay
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"text": "The kettle boils water quickly."}) + "\n")
    rows, _ = dataclasses.replace(plan, cfg=ReplayConfig(source=str(texts), max_tokens=4)).texts(
        tiny, "tiny", 1, None, progress=False)
    assert rows[0].average == "penalty" and rows[0].loss == "forward_kl_tail"  # anchor.kl=tail, the default
    batch = _Collator(tiny.tokenizer.pad_token_id)(training_rows(tiny.tokenizer, [rows[0], "plain text"], 32))
    assert batch["distill_penalty"].tolist() == [True, False]


def test_builtin_openings_are_many_distinct_and_share_no_phrase_with_the_measured_text():
    openings = load_openings("builtin")
    assert len(openings) == 121 and len(set(openings)) == 121

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z']+", text.lower())
        return {tuple(words[i: i + 5]) for i in range(len(words) - 4)}

    measured = set().union(*map(grams, general_text()))
    assert not [o for o in openings if grams(o) & measured]


def _norm(question: str) -> str:
    return " ".join(question.lower().split())


def _questions(path) -> set[str]:
    return {_norm(json.loads(line)["question"]) for line in path.read_text().splitlines()}


def test_builtin_questions_are_asked_as_the_evaluation_asks_and_share_no_item_or_topic_with_it():
    from kinject.data.builtin import general
    from kinject.evaluation.runner import qa_prompt
    from kinject.generation.replay import BUILTIN_QUESTIONS, QUESTION_FEWSHOT

    rows = [json.loads(line) for line in BUILTIN_QUESTIONS.read_text().splitlines()]
    assert len(rows) == 120 and len({r["question"] for r in rows}) == 120
    assert load_openings("questions") == [qa_prompt(r["question"]) for r in rows]
    evaluated = [f for f in sorted(Path(general.__file__).parent.glob("*.jsonl")) if '"question"' in f.read_text()]
    assert {"general_qa.jsonl", "general_mcq.jsonl", "retention.jsonl"} <= {f.name for f in evaluated}
    asked = _questions(BUILTIN_QUESTIONS) | {_norm(q) for q, _ in QUESTION_FEWSHOT}
    assert len(asked) == 120 + len(QUESTION_FEWSHOT) and not asked & set().union(*map(_questions, evaluated))
    topics = {json.loads(line).get("topic") for f in evaluated for line in f.read_text().splitlines()} - {None}
    assert "capitals" in topics and not {r["topic"] for r in rows} & topics


def test_question_replay_stops_each_answer_at_its_line_and_openings_do_not(tiny, tmp_path, monkeypatch):
    from kinject.generation import replay

    asked, original = {}, replay.teacher_targets

    def recorded(model, tokenizer, prompts, settings, *args, stop_at_newline=True, **kwargs):
        asked.update(prompts=[p.student for p in prompts], teacher=[p.teacher for p in prompts],
                     stop=stop_at_newline, answer=settings.answer)
        return original(model, tokenizer, prompts, settings, *args, stop_at_newline=stop_at_newline, **kwargs)

    monkeypatch.setattr(replay, "teacher_targets", recorded)
    cfg = ReplayConfig(prompts="questions", answer="greedy", max_tokens=4)
    rows, _ = Replay(cfg, top_k=2).texts(tiny, "tiny", 3, None, False)
    assert len(rows) == 3 and asked["stop"] is True and asked["answer"] == "greedy"
    assert all(p.startswith("Question: ") and p.endswith("\nAnswer:") for p in asked["prompts"])
    # the frozen model answers after a few-shot header; the model in training sees the question alone
    assert all(t.startswith("Answer the questions.\n\nQuestion: ") and t.endswith("\n\n" + p) and t != p
               for t, p in zip(asked["teacher"], asked["prompts"]))
    assert [list(r.prompt_ids) for r in rows] == [tiny.tokenizer(p).input_ids for p in asked["prompts"]]
    Replay(ReplayConfig(max_tokens=4), top_k=2).texts(tiny, "tiny", 3, None, False)
    assert asked["stop"] is False and asked["answer"] == "sample" and asked["teacher"] == asked["prompts"]
    assert not any(p.startswith("Question: ") for p in asked["prompts"])


def test_self_replay_continues_openings_round_after_round_and_is_cached(tiny, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("Once upon a time", "Dear Sam,")))
    cfg = ReplayConfig(prompts=str(prompts), max_tokens=4)
    rows, info = Replay(cfg, top_k=3).texts(tiny, "tiny", 5, tmp_path / "d", progress=False)
    assert len(rows) == 5 and info["mixed"] == 5 and info["wanted"] == 5 and info["loss"] == "ce"
    starts = [tiny.tokenizer(p).input_ids for p in ("Once upon a time", "Dear Sam,")]
    assert all(list(r.prompt_ids) in starts and 0 < len(r.answer_ids) <= 4 and r.loss == "ce" for r in rows)
    assert all(len(t) == 3 for r in rows for t in r.top_ids)
    same_opening = [r.answer_ids for r in rows if list(r.prompt_ids) == list(rows[0].prompt_ids)]
    assert len(same_opening) >= 2 and len(set(same_opening)) > 1  # each round samples with its own seed
    assert info["cost"]["requests"] == 5 and info["cost"]["cached"] == 0
    again, info2 = Replay(cfg, top_k=3).texts(tiny, "tiny", 5, tmp_path / "d", progress=False)
    assert again == rows and info2["cost"]["cached"] == 5


def test_anchor_scores_a_given_text_at_its_own_tokens_with_the_weight(tiny, tmp_path):
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"text": "The kettle boils water quickly and quietly every morning."}) + "\n")
    cfg = ReplayConfig(source=str(texts), max_tokens=5)
    rows, info = Replay(cfg, loss="forward_kl", weight=0.5, top_k=4).texts(tiny, "tiny", 3, None, progress=False)
    row = rows[0]
    assert rows == [row] * 3 and info["mixed"] == 3  # one text, three wanted: used again
    assert split_text("The kettle boils").answer == " kettle boils"
    assert list(row.prompt_ids) == tiny.tokenizer("The").input_ids
    assert list(row.answer_ids) == tiny.tokenizer(" kettle boils water quickly and quietly every morning.",
                                                  add_special_tokens=False).input_ids[:5]
    assert row.loss == "forward_kl" and row.weight == 0.5
    batch = _Collator(tiny.tokenizer.pad_token_id)(training_rows(tiny.tokenizer, [row, "plain text"], 32))
    assert batch["distill_weight"].tolist() == [0.5, 1.0]


def test_replay_of_a_given_text_trains_its_tokens_without_asking_the_model(tiny, tmp_path):
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"text": "The kettle boils water quickly and quietly every morning."}) + "\n")
    cfg = ReplayConfig(source=str(texts), max_tokens=5)
    scored, _ = Replay(cfg, loss="forward_kl", top_k=4).texts(tiny, "tiny", 1, None, progress=False)

    class Untouchable:
        tokenizer = tiny.tokenizer

        @property
        def model(self):
            raise AssertionError("+replay on a given text asked the model")

    rows, info = Replay(cfg, loss="ce", top_k=4).texts(Untouchable(), "tiny", 2, None, progress=False)
    assert len(rows) == 2 and info["cost"]["requests"] == 0 and info["cost"]["completion_tokens"] == 0
    assert rows[0].prompt_ids == scored[0].prompt_ids and rows[0].answer_ids == scored[0].answer_ids
    assert rows[0].loss == "ce"
    batch = _Collator(tiny.tokenizer.pad_token_id)(training_rows(tiny.tokenizer, [rows[0], scored[0]], 32))
    assert batch["distill_form"].tolist() == [DISTILL_FORMS.index("ce"), DISTILL_FORMS.index("forward_kl")]


def test_replay_and_anchor_in_a_bench_beside_ft(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "replay.max_tokens=4", "replay.ratio=0.5",
                             "methods=[ft,ft+replay,noise-gaussian+replay+anchor]"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    cells = {m: results["methods"][m]["per_seed"]["0"] for m in cfg.methods}
    texts = cells["ft"]["info"]["texts"]
    for name, losses in (("ft+replay", ["ce"]), ("noise-gaussian+replay+anchor", ["ce", "forward_kl_tail"])):
        cell = cells[name]
        assert [r["loss"] for r in cell["info"]["replay"]] == losses
        assert all(r["mixed"] == max(1, round(0.5 * texts)) for r in cell["info"]["replay"])
        assert cell["cost"]["teacher_tokens"] > 0 and cell["cost"]["train_steps"] > 0
        assert cell["cost"]["train_tokens"] > cells["ft"]["cost"]["train_tokens"]
    assert cells["ft"]["cost"]["teacher_tokens"] == 0 and "replay" not in cells["ft"]["info"]


def test_interpolation_ends_at_each_model_and_halves_between():
    from kinject.training.interpolate import interpolate

    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    mid = interpolate(torch.nn.Linear(3, 2).requires_grad_(False), a, 0.0)  # alpha 0: all base
    assert torch.equal(mid.weight, wa)
    assert torch.allclose(interpolate(a, b, 0.5).weight, (wa + wb) / 2)


def test_interpolation_blends_a_tied_weight_once():
    from kinject.training.interpolate import interpolate

    def tied() -> torch.nn.Sequential:
        embed, head = torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False)
        head.weight = embed.weight  # as tie_word_embeddings: one tensor under two names
        return torch.nn.Sequential(embed, head)

    a, b = tied(), tied()
    wa, wb = a[0].weight.detach().clone(), b[0].weight.detach().clone()
    mixed = interpolate(a, b, 0.5)
    assert torch.allclose(mixed[0].weight, (wa + wb) / 2) and mixed[1].weight is mixed[0].weight


def cfg_args(model_dir) -> list[str]:
    return [f"model={model_dir}", *TINY_WORLD]


def test_wise_at_alpha_zero_is_the_base_model_and_reuses_the_training(tiny_model_dir, tmp_path):
    cfg = load_config(None, [*cfg_args(tiny_model_dir), "wise.alpha=0", "methods=[base,ft,ft+wise]"])
    results = bench.run_bench(cfg, tmp_path / "run", log=lambda m: None)
    base, ft, wise = (results["methods"][m]["per_seed"]["0"] for m in ("base", "ft", "ft+wise"))
    assert wise["info"]["reused"] == "ft" and wise["info"]["wise"] == {"alpha": 0.0}
    assert wise["cost"]["train_tokens"] == ft["cost"]["train_tokens"]
    assert {k: wise["metrics"][k] for k in base["metrics"]} == base["metrics"]
    alone = bench.run_bench(load_config(None, [*cfg_args(tiny_model_dir), "wise.alpha=0", "methods=[ft+wise]"]),
                            tmp_path / "alone", log=lambda m: None)["methods"]["ft+wise"]["per_seed"]["0"]
    assert "reused" not in alone["info"] and {k: alone["metrics"][k] for k in base["metrics"]} == base["metrics"]
    from kinject.methods import get_method

    assert get_method("ft+wise+rag").inner == "ft+wise"  # a weight change, not a second context


def test_replay_phases_all_also_mixes_general_text_into_the_demonstration_phase(tiny_model_dir, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    cells = {}
    for phases in ("main", "all"):
        cfg = load_config(None, [f"model={tiny_model_dir}", *TINY_WORLD, "replay.max_tokens=4", "replay.ratio=0.5",
                                 f"replay.phases={phases}", "qa.mode=before", "methods=[ft+qa+anchor]",
                                 "eval.kinds=[qa]"])
        results = bench.run_bench(cfg, tmp_path / phases, log=lambda m: None)
        cells[phases] = results["methods"]["ft+qa+anchor"]["per_seed"]["0"]
    main, every = cells["main"], cells["all"]
    assert [r.get("phase", "main") for r in main["info"]["replay"]] == ["main"]
    assert [r.get("phase", "main") for r in every["info"]["replay"]] == ["main", "before"]
    demos = every["info"]["demonstrations"]["trained_pairs"] + every["info"]["demonstrations"]["documents"]
    assert every["info"]["replay"][1]["wanted"] == max(1, round(0.5 * demos))
    assert every["cost"]["train_tokens"] > main["cost"]["train_tokens"]
    # both phases draw from one sequence of texts: the cell pays for its longest draw once
    from kinject.artifacts import directory_fingerprint
    from kinject.models import load_model

    longest = max(r["wanted"] for r in every["info"]["replay"])
    plan = Replay(cfg.replay, loss="forward_kl", top_k=cfg.anchor.top_k)
    _, alone = plan.texts(load_model(str(tiny_model_dir), "float32"), directory_fingerprint(tiny_model_dir),
                          longest, tmp_path / "cache" / "distill", progress=False)
    assert alone["cost"]["cached"] == longest  # the same texts the cell drew
    assert every["cost"]["teacher_tokens"] == alone["cost"]["prompt_tokens"] + alone["cost"]["completion_tokens"]
