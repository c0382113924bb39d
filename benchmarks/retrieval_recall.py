"""Retrieval recall by mode (dense, bm25, hybrid) on built-in worlds, without the LLM.

    .venv/bin/python benchmarks/retrieval_recall.py [--worlds 1000 1001 1002] [--k 1 3 8] \
        [--candidates 20] [--rrf-constant 60] [--chunking sentence] [--embedder all-minilm-l6-v2] \
        [--backend torch|onnx|onnx-int8] [--rerank lm:smollm2-135m]

For each world (seed) and mode: recall@k, the share of the world's QA questions whose top k
passages include the chunk stating the gold fact (the ``gold_rank`` a ``rag`` cell records), and
answer@k, the share where any of the top k passages states a gold answer. Choose retrieval
settings on development worlds (seeds 1000+); the test seeds 0-2 measure them once. Prints one
row per mode and k: the mean over worlds, its standard error, and each world's figure.
"""

from __future__ import annotations

import argparse
import statistics

from kinject.config import RunConfig
from kinject.data.loaders import load_corpus
from kinject.retrieval.embedder import BACKENDS
from kinject.retrieval.retriever import MODES, RetrievalContext, open_retriever


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, nargs="+", default=[1000, 1001, 1002])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 3, 8])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--rrf-constant", type=int, default=60)
    ap.add_argument("--chunking", default="sentence")
    ap.add_argument("--embedder", default=RunConfig().retrieval.embedder,
                    help="retrieval.embedder: all-minilm-l6-v2, all-mpnet-base-v2 (make embedders), or a directory")
    ap.add_argument("--backend", choices=BACKENDS, default="torch", help="retrieval.backend: the embedder's engine")
    ap.add_argument("--rerank", default=None,
                    help="retrieval.rerank: lm:<model> (query likelihood) or a cross-encoder directory")
    args = ap.parse_args()
    cfg = RunConfig()
    cfg.retrieval.embedder, cfg.retrieval.backend = args.embedder, args.backend
    cfg.retrieval.chunking, cfg.retrieval.progress = args.chunking, False
    cfg.retrieval.candidates, cfg.retrieval.rrf_constant = args.candidates, args.rrf_constant
    cfg.retrieval.rerank = args.rerank
    figures: dict[tuple[str, int, str], list[float]] = {}
    for world in args.worlds:
        corpus = load_corpus(cfg.data, world)
        probes = corpus.probes_of("qa")
        for mode in args.modes:
            cfg.retrieval.mode = mode
            retriever, _ = open_retriever(corpus.documents, cfg.retrieval, None)
            for k in args.k:
                records = [c.record for c in RetrievalContext(retriever, corpus, k)(probes)]
                gold = [r for r in records if "gold_rank" in r]
                figures.setdefault((mode, k, "recall"), []).append(
                    sum(r["gold_rank"] is not None for r in gold) / len(gold))
                figures.setdefault((mode, k, "answer"), []).append(
                    sum(r["answer_retrieved"] for r in records) / len(records))
    print(f"built-in worlds {args.worlds} ({len(probes)} QA questions in the last); chunking {args.chunking}; "
          f"embedder {args.embedder} ({args.backend}); hybrid: candidates {args.candidates}, "
          f"rrf constant {args.rrf_constant}; rerank {args.rerank or 'none'} over the first stage's "
          f"{args.candidates} best")
    print(f"{'mode':8s} {'k':>3s}  {'recall@k':>16s}  {'answer@k':>16s}  per world (recall)")
    for mode in args.modes:
        for k in args.k:
            cells = []
            for what in ("recall", "answer"):
                xs = figures[(mode, k, what)]
                se = f" ± {statistics.stdev(xs) / len(xs) ** 0.5:.3f}" if len(xs) > 1 else " (1 world)"
                cells.append(f"{statistics.mean(xs):.3f}{se}")
            per = " ".join(f"{x:.3f}" for x in figures[(mode, k, "recall")])
            print(f"{mode:8s} {k:>3d}  {cells[0]:>16s}  {cells[1]:>16s}  {per}")


if __name__ == "__main__":
    main()
