#!/usr/bin/env bash
# Issue 22, step 2b on development worlds 1000-1001: the variants of step 2 on the better loss.
# Step 2's `ce` (a cross-entropy on the teacher's greedy answer) doubled QA over forward KL
# (docs/runs/distill-dev/templated-ce), so the later design rows keep distill.loss=ce:
#   ce          the reference, run again on this machine (a bench dir resumes only on its own CPU);
#   ce-grounded only the teacher's answers whose words occur in the document (distill.filter=grounded:
#               the teacher answers QA about half wrong even reading the document, oracle QA ~.51);
#   ce-nodocs   without the documents' own next-token loss (only the teacher's answers);
#   ce-anchor   distill+anchor: a KL toward the frozen model on the model's own replay texts
#               (replay.ratio 0.5, anchor.weight 1), the retention lever of issue 23;
#   ce-e10      10 passes instead of 3 (ft gives the documents 10).
# The baselines are the dev-plain run of the same CPU (PLAIN; on the Intel Xeon,
# docs/runs/dev-plain-intel copied to runs/dev-plain-intel). Read with
#   kinject compare $PLAIN $OUT/* --pair distill,ft --markdown
# Finished cells are skipped, so it resumes. About 8 minutes a 3-pass cell on 2 cores.
set -euo pipefail
kinject=.venv/bin/kinject
out=${OUT:-runs/distill-dev-ce}
common=("seeds=[1000,1001]" "eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]"
        distill.queries=templated distill.loss=ce)
$kinject bench --out $out/ce --methods distill "${common[@]}"
$kinject bench --out $out/ce-grounded --methods distill "${common[@]}" distill.filter=grounded
$kinject bench --out $out/ce-nodocs --methods distill "${common[@]}" distill.documents=false
$kinject bench --out $out/ce-anchor --methods distill+anchor "${common[@]}" replay.ratio=0.5 anchor.weight=1.0
$kinject bench --out $out/ce-e10 --methods distill "${common[@]}" distill.epochs=10
