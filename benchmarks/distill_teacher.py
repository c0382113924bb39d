"""How often distill's teacher answers its templated prompts right, and what ``distill.filter=grounded`` keeps.

    .venv/bin/python benchmarks/distill_teacher.py [--worlds 1000 1001] [key=value ...]

On each built-in world (choose development worlds, seeds 1000+), the ``templated`` prompts
``distill`` would ask (``distill.*`` and ``key=value`` overrides as on the CLI), asked of the
teacher exactly as the method asks them (the model as loaded, the document before each prompt;
targets read from ``$KINJECT_CACHE/distill`` when a run already computed them). Each answer is
scored against the fact the prompt was templated from (the metrics' accuracy), and sorted by the
grounded filter's two checks: found in the document, and found in the question itself. Prints,
per world: answers, right, and for each group how many there are and how many of them are right;
then the precision of what each ``distill.filter`` trains.
"""

from __future__ import annotations

import argparse
import sys

from kinject.artifacts import directory_fingerprint
from kinject.config import load_config
from kinject.data.builtin.templates import fill
from kinject.data.loaders import load_corpus
from kinject.distill.prompts import _TEMPLATES, build_prompts
from kinject.distill.teacher import teacher_targets
from kinject.evaluation.metrics import score_answer
from kinject.methods.distill import _teacher_prompts, grounding
from kinject.models import cache_dir, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="key=value words are config overrides, as on the CLI")
    ap.add_argument("--worlds", type=int, nargs="+", default=[1000, 1001])
    argv = sys.argv[1:]
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args = ap.parse_args([a for a in argv if a not in overrides])
    cfg = load_config(None, ["distill.queries=templated", *overrides])
    loaded = load_model(cfg.model, cfg.model_dtype)
    tok = loaded.tokenizer
    print(f"model {cfg.model} ({loaded.model.dtype}); distill.answer {cfg.distill.answer}, "
          f"max_new_tokens {cfg.distill.max_new_tokens}, per_document {cfg.distill.per_document}")
    print(f"{'world':>6s} {'answers':>7s} {'right':>11s} | {'in doc, not in question':>24s} | "
          f"{'in the question':>16s} | {'not in doc':>16s} | precision none / grounded")
    for world in args.worlds:
        corpus = load_corpus(cfg.data, world)
        prompts, _ = build_prompts(corpus, cfg.distill, cfg.generate)
        gold = {fill(t, f.subject, f.answer): f.answer
                for f in corpus.facts if f.relation in _TEMPLATES for t in _TEMPLATES[f.relation]}
        documents = {d.id: d.text for d in corpus.documents}
        contexts = [[documents[p.doc_id]] for p in prompts]
        req = type("Request", (), {"cfg": cfg, "corpus": corpus, "source": loaded})()
        targets = teacher_targets(loaded.model, tok, _teacher_prompts(req, prompts, contexts), cfg.distill,
                                  directory_fingerprint(loaded.path),
                                  cache_dir() / "distill" if cfg.distill.cache else None, progress=False)
        groups = {"grounded": [0, 0], "in the question": [0, 0], "elsewhere": [0, 0]}  # [answers, right]
        for row, i in zip(targets.rows, targets.asked):
            answer = tok.decode(row.answer_ids, skip_special_tokens=True)
            group = groups[grounding(answer, contexts[i], prompts[i].text)]
            group[0] += 1
            group[1] += score_answer(answer, [gold[prompts[i].text]])["accuracy"] > 0
        n, right = sum(g[0] for g in groups.values()), sum(g[1] for g in groups.values())
        cells = [f"{g[0]:>4d} ({g[1]:>3d} right)" for g in groups.values()]
        kept = groups["grounded"]
        print(f"{world:>6d} {n:>7d} {right:>4d} ({right / n:.3f}) | {cells[0]:>24s} | {cells[1]:>16s} | "
              f"{cells[2]:>16s} | {right / n:.3f} / {kept[1] / max(kept[0], 1):.3f}")


if __name__ == "__main__":
    main()
