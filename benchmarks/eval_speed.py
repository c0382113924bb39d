"""Evaluation speed: the shared-prefix evaluation against running every full prompt plainly.

    .venv/bin/python benchmarks/eval_speed.py [--probes 48]

Both paths score the same MCQ probes and answer the same QA probes of the built-in world on the
embedded model; the script checks they agree and prints seconds and the speed-up, measured in
the same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from kinject.data.builtin.world import BuiltinConfig, build_world
from kinject.evaluation.lm import PrefixLM
from kinject.evaluation.runner import qa_header, qa_suffix
from kinject.models import load_model


def plain_mcq(model, tok, header, probes) -> list[int]:
    """Argmax choice per probe, scoring each full prompt + choice in its own forward pass."""
    picks = []
    for p in probes:
        ctx = tok(header, add_special_tokens=True).input_ids + tok(qa_suffix(p), add_special_tokens=False).input_ids
        lls = []
        for c in p.choices:
            k = tok(" " + c, add_special_tokens=False).input_ids
            with torch.inference_mode():
                logp = torch.log_softmax(model(torch.tensor([ctx + k])).logits[0].float(), -1)
            lls.append(sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(k)))
        picks.append(max(range(len(lls)), key=lls.__getitem__))
    return picks


def plain_qa(model, tok, header, probes, n_new) -> list[str]:
    out = []
    for p in probes:
        ids = tok(header + qa_suffix(p), return_tensors="pt").input_ids
        with torch.inference_mode():
            gen = model.generate(ids, max_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).split("\n", 1)[0].strip())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    loaded = load_model()
    model, tok = loaded.model, loaded.tokenizer
    corpus = build_world(BuiltinConfig(), 0)
    header = qa_header(corpus.instruction, corpus.fewshot)
    mcq, qa = corpus.probes_of("mcq")[: args.probes], corpus.probes_of("qa")[: args.probes]

    t0 = time.perf_counter()
    lm = PrefixLM(model, tok, header, batch_size=16, bf16=False, progress=False)
    scored = lm.score_choices([qa_suffix(p) for p in mcq], [[" " + c for c in p.choices] for p in mcq])
    fast_mcq = [max(range(len(s)), key=lambda i, s=s: s[i][0]) for s in scored]
    t1 = time.perf_counter()
    fast_qa = lm.generate([qa_suffix(p) for p in qa], args.new_tokens)
    t2 = time.perf_counter()
    slow_mcq = plain_mcq(model, tok, header, mcq)
    t3 = time.perf_counter()
    slow_qa = plain_qa(model, tok, header, qa, args.new_tokens)
    t4 = time.perf_counter()

    agree_mcq = sum(a == b for a, b in zip(fast_mcq, slow_mcq)) / len(mcq)
    agree_qa = sum(a == b for a, b in zip(fast_qa, slow_qa)) / len(qa)
    print(f"probes: {len(mcq)} MCQ (4 choices), {len(qa)} QA (<= {args.new_tokens} new tokens); "
          f"threads: {torch.get_num_threads()}")
    print(f"MCQ  shared prefix {t1 - t0:6.1f} s   plain {t3 - t2:6.1f} s   speed-up {(t3 - t2) / (t1 - t0):4.1f}x"
          f"   same argmax: {agree_mcq:.0%}")
    print(f"QA   shared prefix {t2 - t1:6.1f} s   plain {t4 - t3:6.1f} s   speed-up {(t4 - t3) / (t2 - t1):4.1f}x"
          f"   same answer: {agree_qa:.0%}")


if __name__ == "__main__":
    main()
