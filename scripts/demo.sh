#!/usr/bin/env bash
# The main job, end to end on the embedded default: set up, generate the `small` world,
# validate it against the data contract. Later stages extend this same script.
# Usage: bash scripts/demo.sh [OUT_DIR]   (default: data/small)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-data/small}
.venv/bin/larr generate --profile small --seed 7 --out "$OUT"
.venv/bin/larr validate "$OUT" --report "$OUT/validation.json"
echo "[demo] done: world in $OUT (manifest.json has the row counts, rows/s and oracle AUCs)"
