#!/usr/bin/env bash
# The world benchmarks/serving.py measures on: the `tiny` profile (seed 7) through the whole pipeline, a LARR
# model published as the registry's champion, and the serving views exported.  ~10 min on 2 cores.
# Usage: bash benchmarks/serving_world.sh [OUT]   (default runs/bench/serving_world); then
#   .venv/bin/python -m benchmarks.serving --data OUT/data --run OUT/run [--redis 127.0.0.1:6379]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench/serving_world}
D=$OUT/data
R=$OUT/run
L=.venv/bin/larr
$L generate --profile tiny --seed 7 --out "$D" -q
$L spark all --profile tiny --raw "$D" --out "$D/jobs"
$L train all --profile tiny --raw "$D" --jobs "$D/jobs" --out "$R/llm" --init cpt
$L embed --profile tiny --raw "$D" --out "$D/jobs" --encoder "$R/llm/encoder" --features "$D/features"
$L features publish --profile tiny --repo "$R/feature_repo" --raw "$D" --jobs "$D/jobs" --features "$D/features"
$L ctr train --profile tiny --kind larr --data "$D" --features "$D/features" --out "$R/model"
$L models publish --registry "$R/registry" --model "$R/model" --features "$D/features"
echo "serving world ready: --data $D --run $R"
