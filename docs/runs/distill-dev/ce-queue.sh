#!/usr/bin/env bash
# Issue 22, step 2b on development worlds 1000-1001: the variants of step 2 on the better loss.
# Step 2's `ce` (a cross-entropy on the teacher's greedy answer) doubled QA over forward KL
# (docs/runs/distill-dev/templated-ce), so these rows keep distill.loss=ce:
#   ce               the reference, run again on this machine (a bench dir resumes only on its own CPU);
#   ce-grounded      only the teacher's answers found in the document and not in the question
#                    (distill.filter=grounded; benchmarks/distill_teacher.py: the teacher answers the
#                    templated prompts right about half the time even reading the document);
#   grounded-nodocs  the same without the documents' own next-token loss;
#   grounded-anchor  distill+anchor: a KL toward the frozen model on the model's own replay texts
#                    (replay.ratio 0.5, anchor.weight 1), the retention lever of issue 23;
#   grounded-e10     10 passes instead of 3 (ft gives the documents 10).
# (The queue first held ce-nodocs, ce-anchor and ce-e10 without the filter; they became the
# grounded rows once ce-grounded's first world had run, before any of them started.)
# The baselines are the dev-plain run of the same CPU (on the Intel Xeon, docs/runs/dev-plain-intel).
# Read with
#   kinject compare docs/runs/dev-plain-intel runs/distill-dev-ce/<row> --pair distill,ft --markdown
# Finished cells are skipped, so it resumes. About 8 minutes a 3-pass cell on 2 cores. More worlds go
# to directories of their own: SEEDS='[1002,1003]' OUT=runs/distill-dev-ce-w2 bash docs/runs/distill-dev/ce-queue.sh
set -euo pipefail
kinject=.venv/bin/kinject
out=${OUT:-runs/distill-dev-ce}
common=("seeds=${SEEDS:-[1000,1001]}" "eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]"
        distill.queries=templated distill.loss=ce)
$kinject bench --out $out/ce --methods distill "${common[@]}"
$kinject bench --out $out/ce-grounded --methods distill "${common[@]}" distill.filter=grounded
# the later rows on the grounded filter, which step 2b's first two rows showed to be the better form
$kinject bench --out $out/grounded-nodocs --methods distill "${common[@]}" distill.filter=grounded distill.documents=false
$kinject bench --out $out/grounded-anchor --methods distill+anchor "${common[@]}" distill.filter=grounded replay.ratio=0.5 anchor.weight=1.0
$kinject bench --out $out/grounded-e10 --methods distill "${common[@]}" distill.filter=grounded distill.epochs=10
