"""What latent paraphrasing costs: training time against fine-tuning, and the paraphrases it saves.

    .venv/bin/python benchmarks/lapael_cost.py [--seed 0] [--epochs 2] [--k 4] [--paraphraser auto]

On the built-in world of ``--seed`` (its documents; the embedded default model, a fresh copy per
run), the same training is timed three ways in one process: ``ft`` (1 copy per sample), ``ft``
with ``noise.copies`` clean copies (the same rows and tokens as lapael, no paraphraser), and
``lapael`` (the same copies, 1..N-1 perturbed by the paraphraser). The ratios isolate the cost of
the copies and of the paraphraser's forward pass. Then the paraphrases ``ft-para`` would need
(``--k`` per document) are generated with the same model (``kinject paraphrase``'s prompt and
generator, temperature 0.7, up to ``generate.max_new_tokens``, no cache) and timed: the work that
latent paraphrasing replaces. The paraphraser's own one-time training cost is read from
its ``paraphraser.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from kinject.config import RunConfig
from kinject.data.loaders import load_corpus
from kinject.generation.cache import GenerationCost, cached_sample
from kinject.generation.generators import LocalGenerator
from kinject.generation.paraphrase import request
from kinject.lapael.paraphraser import META, load_paraphraser, resolve_paraphraser
from kinject.models import DEFAULT_MODEL, load_model
from kinject.training.trainer import train_causal_lm


def time_training(cfg: RunConfig, texts: list[str], seed: int, copies: int, paraphraser_dir=None) -> dict:
    loaded = load_model(cfg.model)
    perturbation = None
    if paraphraser_dir is not None:
        para = load_paraphraser(paraphraser_dir)
        para.check_fits_model(loaded.model, str(paraphraser_dir))
        perturbation = para.perturbation()
    _, res = train_causal_lm(loaded.model, loaded.tokenizer, texts, cfg.train, seed, copies, perturbation)
    return {"seconds": res.seconds, "steps": res.steps, "tokens": res.tokens}


def time_generation(cfg: RunConfig, texts: list[str], k: int) -> dict:
    """Sample ``k`` rewrites per text with kinject's paraphrase prompt (no cache, no filters)."""
    cost = GenerationCost()
    gen = dataclasses.replace(cfg.generate, temperature=0.7)
    cached_sample(LocalGenerator(gen), [request(t) for t in texts], k, None, cost)
    return {"seconds": cost.seconds, "paraphrases": len(texts) * k, "new_tokens": cost.completion_tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=float, default=2.0, help="passes over the documents in each timed run")
    ap.add_argument("--k", type=int, default=4, help="paraphrases per document to generate (ft-para's para.k)")
    ap.add_argument("--paraphraser", default="auto")
    args = ap.parse_args()
    cfg = RunConfig()
    cfg.train.epochs, cfg.train.progress = args.epochs, False
    texts = [d.text for d in load_corpus(cfg.data, args.seed).documents]
    copies = cfg.noise.copies
    where = resolve_paraphraser(args.paraphraser, DEFAULT_MODEL)
    runs = {
        "ft (1 copy)": time_training(cfg, texts, args.seed, 1),
        f"ft ({copies} clean copies)": time_training(cfg, texts, args.seed, copies),
        f"lapael ({copies} copies)": time_training(cfg, texts, args.seed, copies, where),
    }
    gen = time_generation(cfg, texts, args.k)
    base = runs["ft (1 copy)"]["seconds"]
    same = runs[f"ft ({copies} clean copies)"]["seconds"]
    print(f"built-in world seed {args.seed}: {len(texts)} documents, {args.epochs:g} epochs, model {cfg.model}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'run':24s} {'seconds':>8s} {'steps':>6s} {'tokens':>8s} {'x ft':>6s} {'x same copies':>14s}")
    for name, r in runs.items():
        print(f"{name:24s} {r['seconds']:8.1f} {r['steps']:6d} {r['tokens']:8d} {r['seconds'] / base:6.2f} "
              f"{r['seconds'] / same:14.2f}")
    per = gen["seconds"] / gen["paraphrases"]
    print(f"generating the {gen['paraphrases']} paraphrases ft-para needs (k={args.k}): {gen['seconds']:.1f} s "
          f"({per:.2f} s each, {gen['new_tokens'] / gen['seconds']:.1f} new tokens/s), "
          f"{gen['seconds'] / base:.2f} x the ft run")
    meta = json.loads((where / META).read_text())["training"]
    print(f"paraphraser ({where.name}): trained once in {meta['target_seconds'] + meta['train_seconds']:.0f} s "
          f"(targets {meta['target_seconds']:.0f} s + training {meta['train_seconds']:.0f} s on "
          f"{meta['sentences']} sentences), reused for every injection")


if __name__ == "__main__":
    main()
