"""The broader retention measure on the tiny model: KL from the base on general text, general QA/MCQ kinds."""

import copy
import json

import pytest
import torch

from kinject.data.schema import Corpus
from kinject.evaluation import drift as drift_mod
from kinject.evaluation.drift import BaseReference, compute_reference, drift
from kinject.evaluation.runner import EvalConfig, evaluate

TEXTS = ["The river runs through the valley and into the sea.", "Bread is made from flour, water and yeast.",
         "A violin has four strings and is played with a bow."]


def _full_kl(base, other, tokenizer, texts):
    """Exact mean KL(P_base || P_other) per predicted token, over the whole vocabulary."""
    total, n = 0.0, 0
    for t in texts:
        ids = torch.tensor([tokenizer(t).input_ids])
        with torch.no_grad():
            p = torch.log_softmax(base(ids).logits[0, :-1].float(), -1)
            q = torch.log_softmax(other(ids).logits[0, :-1].float(), -1)
        total += (p.exp() * (p - q)).sum().item()
        n += p.shape[0]
    return total / n


def _shifted(model):
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.model.layers[-1].parameters():
            p.add_(0.05 * torch.randn_like(p))
    return other


def test_the_base_model_has_no_drift_from_itself(tiny):
    ref = compute_reference(tiny.model, tiny.tokenizer, TEXTS, k=50, batch_size=2)
    out = drift(tiny.model, tiny.tokenizer, TEXTS, ref, batch_size=3)
    assert out["kl"] == pytest.approx(0.0, abs=1e-5) and out["nll_ratio"] == pytest.approx(1.0, abs=1e-5)
    assert out["n"] == ref.tokens == sum(len(tiny.tokenizer(t).input_ids) - 1 for t in TEXTS)


def test_top_k_kl_is_a_lower_bound_and_exact_over_the_whole_vocabulary(tiny):
    torch.manual_seed(0)
    other = _shifted(tiny.model)
    full = _full_kl(tiny.model, other, tiny.tokenizer, TEXTS)
    vocab = tiny.model.config.vocab_size
    exact = drift(other, tiny.tokenizer, TEXTS, compute_reference(tiny.model, tiny.tokenizer, TEXTS, k=vocab))
    coarse = drift(other, tiny.tokenizer, TEXTS, compute_reference(tiny.model, tiny.tokenizer, TEXTS, k=20))
    assert full > 1e-3
    assert exact["kl"] == pytest.approx(full, rel=1e-4)
    assert 0 < coarse["kl"] <= full + 1e-6


def test_the_reference_is_computed_once_and_then_read_from_the_cache(tiny, tiny_model_dir, tmp_path, monkeypatch):
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"id": f"g/{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    first = BaseReference(str(tiny_model_dir), "float32", path=text).get()
    monkeypatch.setattr("kinject.models.load_model", lambda *a: pytest.fail("loaded the base model again"))
    again = BaseReference(str(tiny_model_dir), "float32", path=text).get()
    assert len(list((tmp_path / "cache" / "drift").iterdir())) == 1
    assert again.nll == first.nll and all(torch.equal(a, b) for a, b in zip(again.top_ids, first.top_ids))
    assert first.top_ids[0].shape[1] == drift_mod.TOP_K


def test_general_kinds_are_evaluated_beside_the_others(tiny, tiny_model_dir, tmp_path, monkeypatch):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "What colour is grass?", "answer": "green", "choices": ["red", "green", "blue", "black"]},
        {"question": "How many legs has a dog?", "answer": "4", "choices": ["4", "2", "6", "8"]}]))
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"id": f"g/{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    monkeypatch.setenv("KINJECT_CACHE", str(tmp_path / "cache"))
    cfg = EvalConfig(kinds=["general_qa", "general_mcq", "general_kl"], general_qa_file=str(items),
                     general_mcq_file=str(items), bf16=False, progress=False, max_new_tokens=3)
    reference = BaseReference(str(tiny_model_dir), "float32", bf16=False, path=text)
    metrics, samples = evaluate(tiny.model, tiny.tokenizer, Corpus(name="c", documents=[], probes=[]), cfg,
                                reference=reference)
    assert metrics["general_qa"]["n"] == 2 and 0 <= metrics["general_qa"]["accuracy"] <= 1
    assert metrics["general_mcq"]["n"] == 2 and {"acc", "acc_norm"} <= set(metrics["general_mcq"])
    assert metrics["general_kl"]["kl"] == pytest.approx(0.0, abs=1e-5)  # the base model itself
    assert [s["kind"] for s in samples] == ["general_qa"] * 2 + ["general_mcq"] * 2
    assert [s["label"] for s in samples if s["kind"] == "general_mcq"] == [1, 0]
    with pytest.raises(ValueError, match="needs the base model's reference"):
        evaluate(tiny.model, tiny.tokenizer, Corpus(name="c", documents=[], probes=[]),
                 EvalConfig(kinds=["general_kl"], progress=False))


def test_the_shipped_general_sets_are_selections_of_the_candidates():
    from kinject.data.builtin import general

    candidates = {it["question"]: it for it in general.general_items()}
    qa, mcq = general.general_qa_probes(), general.general_mcq_probes()
    assert len(qa) >= 200 and len(mcq) >= 200 and len(general.general_text()) == 120
    assert all(candidates[p.question]["answer"] == p.answers[0] for p in qa)
    assert all(p.choices[p.label] == candidates[p.question]["answer"] for p in mcq)
    assert len({p.question for p in qa}) == len(qa)
