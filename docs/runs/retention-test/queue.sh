#!/usr/bin/env bash
# Issue 23, measured once: each family's setting, chosen on worlds 1000-1001 by the rule in
# docs/results.md ("The rule for issue 23's choices") and written to ROWS (default
# docs/runs/retention-test/rows.txt) before this runs, one row a line:
#   <name> <method> [<key>=<value> ...]      e.g.  replay ft+replay replay.ratio=0.5
# (lines starting with # are skipped). Parts, in the order the rule runs them:
#   wider   worlds 1002-1003, read beside docs/runs/dev-plain-intel-w2 (and distill-dev-ce-w2)
#   test    seeds 0-2, beside docs/runs/distill-test/baselines
#   fresh   seeds 12-14, beside docs/runs/distill-fresh/baselines (no design of issue 23 saw them)
#   squad   the LaPael SQuAD split's first 200 test facts (configs/qa-squad.yaml), seeds 0-2: the
#           baselines again with the general kinds (distill on continuation prompts, as in
#           docs/runs/distill-squad), then each row whose method applies there (the test split has
#           no gold paraphrases, so ft-para rows are left out)
#   bash docs/runs/retention-test/queue.sh wider [test] [fresh] [squad]
# A bench directory resumes only on its own CPU: run a part on one machine. Finished cells are skipped.
set -euo pipefail
kinject=.venv/bin/kinject
rows=${ROWS:-docs/runs/retention-test/rows.txt}
[ -f "$rows" ] || { echo "no chosen rows: $rows (write them by the rule first)" >&2; exit 2; }
kinds="eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]"
for part in "$@"; do
  case $part in
    wider) seeds="seeds=[1002,1003]" ;;
    test) seeds="seeds=[0,1,2]" ;;
    fresh) seeds="seeds=[12,13,14]" ;;
    squad) seeds="seeds=[0,1,2]"
      $kinject bench --config configs/qa-squad.yaml --out runs/retention-squad/baselines "$seeds" \
        "methods=[base,ft,ft+qa,rag,distill]" distill.queries=continuation \
        "eval.kinds=[qa,retention,general_qa,general_mcq,general_kl]" ;;
    *) echo "unknown part: $part (wider, test, fresh or squad)" >&2; exit 2 ;;
  esac
  while read -r name method settings; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    read -r -a extra <<< "$settings"
    if [ "$part" = squad ]; then
      [[ "$method" == ft-para* ]] && continue
      $kinject bench --config configs/qa-squad.yaml --out "runs/retention-squad/$name" "$seeds" "methods=[$method]" \
        distill.queries=continuation "eval.kinds=[qa,retention,general_qa,general_mcq,general_kl]" "${extra[@]}" < /dev/null
    else
      $kinject bench --out "runs/retention-$part/$name" --methods "$method" "$seeds" "$kinds" "${extra[@]}" < /dev/null
    fi
  done < "$rows"
done
