#!/usr/bin/env bash
# Issue 21 on the LaPael SQuAD split: a paraphraser trained on the train split (~1,000 sentences,
# whole sentences, the new mask training that the shipped one used: row_free, mask_lr 1e-2, up to
# 8 epochs with patience 2), then ft, neftune (every copy noised, alpha 5), the fixed-noise
# baselines and lapael under LaPael's recipe on the first 200 test facts, seeds 0-2.
#   docs/runs/squad-recipe/queue.sh
set -euo pipefail
kinject=.venv/bin/kinject
para=runs/paraphrasers/squad-rowfree-mlr
squad=(data.source=lapael-squad data.path=../shared/data/lapael-squad data.split=test data.limit=200
       "eval.kinds=[qa,retention]")
if [ ! -f $para/paraphraser.json ]; then
  $kinject train-paraphraser ../shared/data/lapael-squad --out $para lapael.epochs=8 lapael.patience=2 \
    lapael.mask_loss=row_free lapael.mask_lr=1e-2
fi
$kinject bench --config configs/lapael-recipe.yaml --out runs/squad-recipe/main --seeds 3 \
  --methods base,ft,noise-uniform,noise-gaussian,lapael "${squad[@]}" lapael.paraphraser=$para
$kinject bench --config configs/lapael-recipe.yaml --out runs/squad-recipe/neftune-all --seeds 3 \
  --methods neftune "${squad[@]}" noise.clean_copy=false noise.neftune_alpha=5
# The oracle mask (the test sentences' answer spans kept; SQuAD marks no subject). ft-para and
# lapael+para have no gold paraphrases here (the split ships them for train sentences only).
$kinject bench --config configs/lapael-recipe.yaml --out runs/squad-recipe/oracle --seeds 3 \
  --methods lapael "${squad[@]}" lapael.paraphraser=$para lapael.mask=oracle
