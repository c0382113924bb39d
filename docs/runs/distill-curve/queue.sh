#!/usr/bin/env bash
# Issue 22's curve on development worlds 1000-1001: accuracy against the number of distilled
# prompts per document (distill.per_document 1, 2, 4, 8, 16) at distill's fixed passes (10 since its
# defaults changed), so more prompts are more steps (as the paraphrase curve's runs/para-curve-2pass;
# `templated` has exactly 8 prompts a document, so its curve stops at 8); and beside it ft-para
# with 4 generated paraphrases a document, whose generation cost is the teacher cost's yardstick
# (both cells record generation or teacher tokens and seconds on the same machine).
#   SOURCE=<source> [METHOD=<method>] [SETTINGS=<settings>] bash docs/runs/distill-curve/queue.sh
# METHOD and SETTINGS: the row chosen by step 2b (docs/runs/distill-test/queue.sh names them).
# SOURCE: the query source chosen on the development worlds (docs/runs/distill-dev, step 1).
set -euo pipefail
kinject=.venv/bin/kinject
source=${SOURCE:?set SOURCE to the query source chosen on the development worlds}
method=${METHOD:-distill}
read -r -a settings <<< "${SETTINGS:-}"
counts=1,2,4,8,16
[ "$source" = templated ] && counts=1,2,4,8
common=("seeds=[1000,1001]" "eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]")
$kinject bench --out runs/distill-curve/$source --methods "$method" --sweep distill.per_document=$counts \
  "${common[@]}" distill.queries=$source "${settings[@]}"
$kinject bench --out runs/distill-curve/ft-para-generated --methods ft-para "${common[@]}" para.source=generate
