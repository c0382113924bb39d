"""The prefix-cached evaluation must agree with plain, uncached transformers calls."""

import torch

from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.evaluation.lm import PrefixLM
from kinject.evaluation.runner import EvalConfig, evaluate, qa_header

PREFIX = "Answer the questions.\n\nQuestion: What is the capital of France?\nAnswer: Paris\n\n"
PROMPTS = ["Question: Who wrote Hamlet?\nAnswer:", "Question: What is two plus two?\nAnswer:",
           "Question: Which planet do we live on and why is it so?\nAnswer:"]


def _plain_greedy(model, tok, text, n):
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).split("\n", 1)[0].strip()


def test_cached_generation_equals_plain_greedy(tiny):
    lm = PrefixLM(tiny.model, tiny.tokenizer, PREFIX, batch_size=2, bf16=False, progress=False)
    got = lm.generate(PROMPTS, max_new_tokens=6)
    want = [_plain_greedy(tiny.model, tiny.tokenizer, PREFIX + p, 6) for p in PROMPTS]
    assert got == want
    assert any(got)  # a random model still emits something


def test_cached_choice_scores_equal_plain_forward(tiny):
    model, tok = tiny.model, tiny.tokenizer
    lm = PrefixLM(model, tok, PREFIX, batch_size=2, bf16=False, progress=False)
    choices = [[" William Shakespeare", " Homer"], [" 4", " five", " 22 or so"], [" Earth"]]
    got = lm.score_choices(PROMPTS, choices)
    for ctx, conts, scores in zip(PROMPTS, choices, got):
        assert len(scores) == len(conts)
        for cont, (ll, n) in zip(conts, scores):
            c = tok(PREFIX, add_special_tokens=True).input_ids + tok(ctx, add_special_tokens=False).input_ids
            k = tok(cont, add_special_tokens=False).input_ids
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([c + k])).logits[0].float(), -1)
            want = sum(logp[len(c) - 1 + i, t].item() for i, t in enumerate(k))
            assert n == len(k)
            assert abs(ll - want) < 1e-3, (cont, ll, want)


def test_evaluate_records_every_probe_with_prompt_prediction_and_score(tiny):
    corpus = build_world(BuiltinConfig(test_people=2, test_orgs=1, train_people=2, train_orgs=1), 0)
    cfg = EvalConfig(batch_size=4, max_new_tokens=4, cloze_max_new_tokens=4, bf16=False, progress=False, limit=5)
    metrics, samples = evaluate(tiny.model, tiny.tokenizer, corpus, cfg)
    assert {"qa", "mcq", "cloze", "retention"} <= set(metrics)
    assert [s["kind"] for s in samples].count("mcq") == 5 and len(samples) == 20
    header = qa_header(corpus.instruction, corpus.fewshot)
    for s in samples:
        if s["kind"] == "qa":
            assert s["prompt"].startswith(header) and "prediction" in s and 0 <= s["f1"] <= 1
        if s["kind"] == "mcq":
            assert len(s["loglikelihoods"]) == 4 and all(x < 0 for x in s["loglikelihoods"])
    assert 0.0 <= metrics["mcq"]["acc"] <= 1.0 and metrics["qa"]["n"] == 5
