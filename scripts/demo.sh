#!/usr/bin/env bash
# The main job, end to end on the embedded default (the `small` profile, seed 7):
#   1. generate the simulated world and validate it against the data contract
#   2. Spark jobs (local mode): CPT corpus, contrastive pairs, scene vocabulary, CTR samples
#   3. LLM stages: default backbone, CPT, contrastive fine-tuning (from CPT and, for the noCPT ablation, from
#      base), and the stage 1-2 quality report
#   4. embed every distinct feature text (Spark), publish to Feast (SQLite online store), recall examples
#   5. Kafka (KRaft, local) + the event simulator + the consumer for a short window: freshness figures
#   6. CTR: PLE vs LARR Complete, one seed (the whole comparison with baselines, ablations, 3 seeds and the
#      sweeps: larr experiment paper --profile small --seeds 3 --out runs/small/paper, ~1 h on 2 cores)
#   7. the scoring service on the LARR model: publish, serve, score one request from the log, print it
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
$LARR embed --profile small --raw "$DATA" --out "$DATA/jobs" --encoder "$RUN/llm/encoder" --features "$DATA/features"
$LARR features publish --repo "$RUN/feature_repo" --raw "$DATA" --jobs "$DATA/jobs" --features "$DATA/features"
$LARR recall "a user visiting Guangdong on vacation, rainy evening" --k 10 \
  --repo "$RUN/feature_repo" --raw "$DATA" --encoder "$RUN/llm/encoder"
$LARR recall-report --repo "$RUN/feature_repo" --raw "$DATA" --llm "$RUN/llm" --out "$RUN/recall"

bash scripts/kafka.sh start
TOPIC=scene-events-demo-$(date +%s)
$LARR stream simulate --raw "$DATA" --topic "$TOPIC" --rate 500 --duration 15 --malformed-frac 0.01 \
  --out-of-order-frac 0.02 --seed 7 > "$RUN/stream_simulate.json" &
SIM=$!
$LARR stream consume --repo "$RUN/feature_repo" --topic "$TOPIC" --group larr-demo --max-seconds 20 \
  --max-idle-seconds 4 --known-keys "$DATA/features/scene_value_embeddings.parquet" \
  --backlog "$DATA/jobs/backlog/scene_backlog.jsonl" | tee "$RUN/stream_consume.json"
wait $SIM
echo "[demo] streaming: sent $(cat "$RUN/stream_simulate.json")"

$LARR experiment paper --profile small --seeds 1 --no-sweeps --models ple larr --data "$DATA" --llm "$RUN/llm" \
  --out "$RUN/ctr" -q
# 7. the scoring service on the demo's LARR model: publish it, serve it, score one real request, print it
$LARR ctr train --profile small --kind larr --data "$DATA" --out "$RUN/ctr_model" -q
$LARR models publish --registry "$RUN/registry" --model "$RUN/ctr_model" --features "$DATA/features"
$LARR serve --registry "$RUN/registry" --repo "$RUN/feature_repo" --port 8765 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
$LARR score --url http://127.0.0.1:8765 --raw "$DATA" --wait 180 | tee "$RUN/score_example.json"
kill $SERVE
echo "[demo] done: world in $DATA, job outputs in $DATA/jobs, LLM report $RUN/llm/report.md," \
     "recall report $RUN/recall/recall_report.md, streaming figures $RUN/stream_consume.json," \
     "CTR report $RUN/ctr/report.md, a scored request $RUN/score_example.json"
