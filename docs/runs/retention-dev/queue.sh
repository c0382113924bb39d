#!/usr/bin/env bash
# Issue 23 on development worlds 1000-1001: what +replay, +anchor, +wise and LoRA buy against ft and ft-para,
# on both retention measures (the 52 questions, and general_qa / general_mcq / general_kl). One
# run directory per setting; read them together with
#   kinject compare runs/dev-plain-intel runs/retention-dev/* --pair ft+anchor,ft --markdown
# Finished cells are skipped, so it resumes. The families run one after another (replay and anchor,
# WiSE-FT, LoRA and the layer subset, distill), so that each is whole on one CPU: a bench directory
# resumes only on the CPU it began on, so BASELINES names the baselines of this CPU: on the Intel Xeon copy docs/runs/dev-plain-intel
# to runs/ (the default), on the AMD EPYC docs/runs/dev-plain, and set BASELINES=runs/dev-plain.
set -euo pipefail
kinject=.venv/bin/kinject
out=${OUT:-runs/retention-dev}
common=("seeds=[1000,1001]" "eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]")
# the baselines, run only where they are missing: a directory copied from docs/runs was recorded
# under distill's defaults before they changed (issue 22), so kinject would refuse to resume it
baselines=${BASELINES:-runs/dev-plain-intel}
[ -f "$baselines/results.json" ] ||
  $kinject bench --out "$baselines" --methods base,ft,ft-para,ft-para+qa,rag,oracle "${common[@]}"
for ratio in 0.1 0.5 1.0; do
  $kinject bench --out $out/replay-$ratio --methods ft+replay,ft+anchor "${common[@]}" replay.ratio=$ratio anchor.kl=topk
done
for weight in 0.3 3.0; do
  $kinject bench --out $out/anchor-w$weight --methods ft+anchor "${common[@]}" replay.ratio=0.5 anchor.weight=$weight anchor.kl=topk
done
$kinject bench --out $out/para-anchor --methods ft-para+anchor,ft-para+replay "${common[@]}" replay.ratio=0.5 anchor.kl=topk
# The anchor where ft-para+qa forgets: in +qa's phase of demonstrations alone too (replay.phases=all),
# against the anchor in the main phase only.
for phases in main all; do
  $kinject bench --out $out/qa-anchor-$phases --methods ft-para+qa+anchor "${common[@]}" replay.ratio=0.5 replay.phases=$phases \
    anchor.kl=topk
done
# The anchor as a term of its own (anchor.form=penalty: the method's mean + weight x the anchor's mean)
# against the pooled mean every row above ran, at two weights.
for weight in 1.0 3.0; do
  $kinject bench --out $out/penalty-w$weight --methods ft+anchor,ft-para+anchor "${common[@]}" replay.ratio=0.5 anchor.form=penalty \
    anchor.weight=$weight anchor.kl=topk
done
# The anchor with anchor.kl=tail, the default since 2026-12-07: the exact KL, whose minimum is the frozen
# model (every row above ran topk, the renormalised target; added after they had run, when weight 3 was
# seen to lose retention): ratio .5, weights 1, 3 and 10 on ft; 3 on ft-para; 3 on ft-para+qa in both phases.
for weight in 1.0 3.0 10.0; do
  $kinject bench --out $out/tail-w$weight --methods ft+anchor "${common[@]}" replay.ratio=0.5 anchor.weight=$weight
done
$kinject bench --out $out/tail-para-w3.0 --methods ft-para+anchor "${common[@]}" replay.ratio=0.5 anchor.weight=3.0
$kinject bench --out $out/tail-qa-w3.0 --methods ft-para+qa+anchor "${common[@]}" replay.ratio=0.5 anchor.weight=3.0 \
  replay.phases=all
# WiSE-FT: each alpha one run (ft and ft-para trained again in each, +wise reusing them in the cell's
# seed), read beside the rows above.
for alpha in 0.3 0.5 0.7; do
  $kinject bench --out $out/wise-$alpha --methods ft,ft+wise,ft-para,ft-para+wise "${common[@]}" wise.alpha=$alpha
done
# WiSE-FT on the most accurate method that trains on its own data, ft-para+qa (added on 2026-12-07
# before any +wise row had run): the family is paired with ft-para+qa, trained again in each run.
for alpha in 0.3 0.5 0.7; do
  $kinject bench --out $out/wise-qa-$alpha --methods ft-para+qa,ft-para+qa+wise "${common[@]}" wise.alpha=$alpha
done
# Replay in the evaluation's question format (replay.prompts=questions: the frozen model's own answers to
# kinject's 120 everyday questions, on topics no general item of the evaluation is filed under; added on
# 2026-12-07 after the rows above had shown that injected facts take over the answers to general questions,
# before any row of it had run): ratio .5 on ft, ft-para and ft-para+qa (in both of +qa's phases).
# qreplay-0.5 ran the option's first version (commit 15bfdd7: no header, answers sampled at temperature 1,
# mostly an empty line or nonsense); qreplay-greedy-0.5 runs it as it now is (the frozen model answers after a
# few-shot header of its own, greedy), added after qreplay-0.5 had run and its answers had been read.
$kinject bench --out $out/qreplay-0.5 --methods ft+replay,ft-para+replay,ft-para+qa+replay "${common[@]}" \
  replay.prompts=questions replay.ratio=0.5 replay.phases=all
# WiSE-FT on distill, the most accurate closed-book method (added on 2026-12-07 after the ft and ft-para
# +wise rows at alpha .3 and .5, before any distill+wise row had run): distill trained again in the run
# (its defaults), then blended at alpha .5; one more alpha follows from it (.3 if retention < .85, else .7).
$kinject bench --out $out/distill-wise-0.5 --methods distill,distill+wise "${common[@]}" wise.alpha=0.5
$kinject bench --out $out/qreplay-greedy-0.5 --methods ft+replay,ft-para+replay,ft-para+qa+replay "${common[@]}" \
  replay.prompts=questions replay.answer=greedy replay.ratio=0.5 replay.phases=all
# distill-wise-0.5 kept .750 (below .85), so the family's second alpha is .3.
$kinject bench --out $out/distill-wise-0.3 --methods distill,distill+wise "${common[@]}" wise.alpha=0.3
# LoRA (r 16 on the seven projections) at two learning rates: fewer weights moved, less forgotten?
for lr in 3e-4 1e-3; do
  $kinject bench --out $out/lora-$lr --methods ft,ft-para "${common[@]}" train.mode=lora train.lr=$lr
done
# A layer subset: LaPael's recipe (only the MLPs of layers 5 and up, lr 1e-3 with step decay).
$kinject bench --config configs/lapael-recipe.yaml --out $out/subset-recipe --methods ft,ft-para "${common[@]}"
# distill (its defaults: ce, grounded answers, 10 passes) with the replay and the anchor (anchor.kl=tail), paired by world
# with distill's own cells on this CPU (docs/runs/distill-dev-ce/grounded-e10, the same command without a modifier).
$kinject bench --out $out/distill-mix --methods distill+anchor,distill+replay "${common[@]}" replay.ratio=0.5
