#!/usr/bin/env bash
# Issue 22, measured once: the distill row chosen on development worlds 1000-1003 (by the rule in
# docs/results.md, "Step 2b") on the test seeds 0-2 with every query source, against the baselines;
# then on fresh seeds 12-14, the chosen row (templated) against distill's defaults, to confirm or
# not a change of defaults (read with kinject compare runs/distill-fresh/s*/{defaults,chosen}
# --pair chosen/distill,defaults/distill). `fresh-baselines`: the baselines and distill with
# continuation prompts on the same fresh seeds, read beside the chosen row (step 8: kinject compare
# runs/distill-fresh/baselines runs/distill-fresh/continuation runs/distill-fresh/s*/chosen).
# METHOD and SETTINGS are the chosen row, fixed before this runs; the row step 2c chose:
#   METHOD=distill SETTINGS='distill.loss=ce distill.filter=grounded distill.epochs=10' \
#     bash docs/runs/distill-test/queue.sh [test] [fresh] [fresh-baselines]
# A bench directory resumes only on its own CPU: run a part on one machine. Finished cells are skipped.
set -euo pipefail
kinject=.venv/bin/kinject
method=${METHOD:?set METHOD to the method of the chosen row}
read -r -a settings <<< "${SETTINGS:?set SETTINGS to the settings of the chosen row}"
kinds="eval.kinds=[qa,mcq,cloze,retention,general_qa,general_mcq,general_kl]"
for part in "${@:-test}"; do
  case $part in
    test) out=runs/distill-test ;;
    fresh|fresh-baselines) out=runs/distill-fresh ;;
    *) echo "unknown part: $part (test, fresh or fresh-baselines)" >&2; exit 2 ;;
  esac
  if [ "$part" = test ]; then
    common=("seeds=[0,1,2]" "$kinds")
    $kinject bench --out $out/baselines --methods base,ft,ft-para,ft-para+qa,rag,oracle "${common[@]}"
    for source in templated continuation generated trivia self-study; do
      $kinject bench --out $out/$source --methods "$method" "${common[@]}" distill.queries=$source "${settings[@]}"
    done
  elif [ "$part" = fresh-baselines ]; then
    common=("seeds=[12,13,14]" "$kinds")
    $kinject bench --out $out/baselines --methods ft,ft-para,ft-para+qa,rag,oracle "${common[@]}"
    $kinject bench --out $out/continuation --methods "$method" "${common[@]}" distill.queries=continuation \
      "${settings[@]}"
  else  # one seed at a time, defaults and chosen side by side, so that each pair finishes on one CPU
    for s in 12 13 14; do
      $kinject bench --out $out/s$s/defaults --methods distill "seeds=[$s]" "$kinds"
      $kinject bench --out $out/s$s/chosen --methods "$method" "seeds=[$s]" "$kinds" distill.queries=templated \
        "${settings[@]}"
    done
  fi
done
