#!/usr/bin/env bash
# Issue 22 on the LaPael SQuAD split (first 200 test facts, seeds 0-2): distill against ft and
# ft+qa (configs/qa-squad.yaml: 5 passes, the train split's QA pairs as demonstrations), on EM/F1
# and retention. `templated` prompts exist on the built-in benchmark only, so SOURCE is the best
# of the other sources on the development worlds (docs/runs/distill-dev, step 1), fixed before
# this runs:
#   SOURCE=<source> [METHOD=<method>] [SETTINGS=<settings>] bash docs/runs/distill-squad/queue.sh
# METHOD and SETTINGS: the row chosen by step 2b (docs/runs/distill-test/queue.sh names them).
# Finished cells are skipped, so it resumes.
set -euo pipefail
kinject=.venv/bin/kinject
source=${SOURCE:?set SOURCE to the query source chosen on the development worlds}
method=${METHOD:-distill}
read -r -a settings <<< "${SETTINGS:-}"
$kinject bench --config configs/qa-squad.yaml --out runs/distill-squad/baselines --seeds 3 "methods=[base,ft,ft+qa]"
$kinject bench --config configs/qa-squad.yaml --out runs/distill-squad/$source --seeds 3 "methods=[$method]" \
  distill.queries=$source "${settings[@]}"
