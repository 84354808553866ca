#!/usr/bin/env bash
# The main job, end to end on the embedded default (the `small` profile, seed 7):
#   1. generate the simulated world and validate it against the data contract
#   2. Spark jobs (local mode): CPT corpus, contrastive pairs, scene vocabulary, CTR samples
#   3. LLM stages: default backbone, CPT, contrastive fine-tuning (from CPT and, for the ablation, from base),
#      and the stage 1-2 quality report
# Usage: bash scripts/demo.sh [DATA_DIR] [RUN_DIR]   (defaults: data/small runs/small)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATA=${1:-data/small}
RUN=${2:-runs/small}
LARR=.venv/bin/larr
$LARR generate --profile small --seed 7 --out "$DATA" -q
$LARR validate "$DATA" --report "$DATA/validation.json"
$LARR spark all --profile small --raw "$DATA" --out "$DATA/jobs"
$LARR train all --profile small --raw "$DATA" --jobs "$DATA/jobs" --out "$RUN/llm" --init cpt base
echo "[demo] done: world in $DATA, job outputs in $DATA/jobs, LLM report in $RUN/llm/report.md"
