#!/usr/bin/env bash
# Issue 21's test-seed comparison under LaPael's recipe (configs/lapael-recipe.yaml), one seed at
# a time, three run directories per seed. Finished cells are skipped, so it resumes.
#   docs/runs/test-recipe/queue.sh 0 1 2 6 7 8
set -euo pipefail
kinject=.venv/bin/kinject
recipe=configs/lapael-recipe.yaml
for seed in "$@"; do
  out=runs/test-recipe/s$seed
  $kinject bench --config $recipe --out "$out/main" "seeds=[$seed]" \
    --methods ft,lapael,lapael+para,ft-para,noise-uniform,noise-gaussian
  $kinject bench --config $recipe --out "$out/neftune-all" "seeds=[$seed]" \
    --methods neftune noise.clean_copy=false noise.neftune_alpha=5
  $kinject bench --config $recipe --out "$out/oracle" "seeds=[$seed]" \
    --methods lapael lapael.mask=oracle
done
