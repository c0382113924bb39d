#!/usr/bin/env bash
# Issue 24: the built-in benchmark as a stream of four updates (configs/stream.yaml: ft, ft-para,
# lapael, distill, rag, ft+retrain; shuffled), seeds 0-2; then ft-para on paraphrases the embedded model
# writes at each update (para.source=generate), for LaPael's cost claim: its paraphraser is trained
# once (info.paraphraser_train_seconds; the shipped one for the default model), where generated
# paraphrases are paid again at every update. Read with
#   kinject compare runs/stream runs/stream-generated --markdown
# A stopped cell resumes at its next update; finished cells are skipped.
set -euo pipefail
kinject=.venv/bin/kinject
$kinject bench --config configs/stream.yaml --seeds 3 --out runs/stream
$kinject bench --config configs/stream.yaml --seeds 3 --out runs/stream-generated "methods=[ft-para]" para.source=generate
