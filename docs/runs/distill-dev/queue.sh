#!/usr/bin/env bash
# Issue 22 on development worlds 1000-1001: context distillation's design, chosen here before any
# test seed. Against the baselines ft, ft-para, ft-para+qa, rag and oracle (runs/dev-plain, shared
# with the retention queue), with both retention measures:
#   1. the prompt source (distill.queries): templated, continuation, generated, self-study
#      (generated and self-study are written by the embedded 135M model, generate: defaults);
#   2. for the best source, the loss (forward_kl, ce) and the KL temperature (1, 2);
#   3. the documents' own next-token loss on or off (distill.documents);
#   4. sampled answers, and the paper's reported form (sampled, KL temperature 2, LoRA, no documents).
# Read them together with
#   kinject compare runs/dev-plain runs/distill-dev/* --pair distill,ft-para+qa --markdown
# Finished cells are skipped, so it resumes. About 5 minutes a distill cell on 2 cores.
set -euo pipefail
kinject=.venv/bin/kinject
out=runs/distill-dev
common=("seeds=[1000,1001]" "eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]")
$kinject bench --out runs/dev-plain --methods base,ft,ft-para,ft-para+qa,rag,oracle "${common[@]}"
for source in templated continuation generated self-study; do
  $kinject bench --out $out/queries-$source --methods distill "${common[@]}" distill.queries=$source
done
source=${BEST_SOURCE:-templated}  # set after step 1
$kinject bench --out $out/$source-ce --methods distill "${common[@]}" distill.queries=$source distill.loss=ce
$kinject bench --out $out/$source-t2 --methods distill "${common[@]}" distill.queries=$source distill.kl_temperature=2
$kinject bench --out $out/$source-nodocs --methods distill "${common[@]}" distill.queries=$source distill.documents=false
# Prompt distillation's reported form, as far as it could be checked (the official code was not
# reachable from here; methods.md says which values come from the paper's text): sampled answers at
# 1.5, KL temperature 2, a LoRA student, no next-token loss on the documents.
$kinject bench --out $out/$source-sample --methods distill "${common[@]}" distill.queries=$source distill.answer=sample
$kinject bench --out $out/$source-pd --methods distill "${common[@]}" distill.queries=$source distill.answer=sample \
  distill.kl_temperature=2 distill.documents=false train.mode=lora
