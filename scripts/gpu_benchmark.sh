#!/usr/bin/env bash
# The at-scale composites benchmark of docs/results.md, every method on every case, on a GPU.
#
#   OUT=/tmp/gpu-out bash scripts/gpu_benchmark.sh lite2:200 lite1:200
#
# For each MODEL:SECONDS, the cases of the committed run docs/benchmark/efficientnet-MODEL/
# composites are rebuilt from its records (scripts/rebuild_cases.py; --expect checks the
# images against sums written where the committed run was made, if FINGERPRINTS holds
# MODEL.json), then `captum-gfi evaluate` runs METHODS on them with the run's own data options
# in a new folder, in float32 (TF32 off), stopped after SECONDS (the run is resumable: it keeps
# the whole batches it finished, every method on each). The records go to $OUT/MODEL.jsonl;
# the tables come from them with `captum-gfi evaluate ... --report-only`. With RESUME set,
# RESUME/MODEL.jsonl (an earlier call's records) seeds the run, which then goes on from there.
set -u
OUT=${OUT:-/tmp/gpu-out}
RUNS=${RUNS:-/tmp/gpu-runs}
METHODS=${METHODS:-gradcam,gfi:refined,gfi,gfi:authors,gfi:refined_beta6,ig,saliency,guided_backprop,occlusion,center}
BATCH=${BATCH:-16}
# DEVICE (default cuda) only for a dry run elsewhere
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
for spec in "$@"; do
  m=${spec%%:*}
  seconds=${spec##*:}
  src=docs/benchmark/efficientnet-$m/composites
  run=$RUNS/$m
  read -r n per_photo tries < <(python3 -c "import json; c = json.load(open('$src/config.json'));
print(c['n'], c['max_per_photo'], c['max_tries'])")
  expect=()
  if [ -n "${FINGERPRINTS:-}" ] && [ -f "$FINGERPRINTS/$m.json" ]; then
    expect=(--expect "$FINGERPRINTS/$m.json")
  fi
  python3 scripts/rebuild_cases.py "$src" "$run" "${expect[@]}"
  rc=$?  # 3: images differ from the fingerprints (reported, the run goes on)
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || exit 1
  if [ -n "${RESUME:-}" ] && [ -f "$RESUME/$m.jsonl" ]; then  # records of an earlier call
    mkdir -p "$run/shards" && cp "$RESUME/$m.jsonl" "$run/shards/rank0.jsonl"
  fi
  start=$(date +%s)
  timeout "$seconds" python3 research/settings_search.py --no-tf32 evaluate \
    --dataset composites --model "efficientnet-$m" --num-cases "$n" --max-per-photo "$per_photo" \
    --max-tries "$tries" --seed 0 --device "${DEVICE:-cuda}" --out "$run" --methods "$METHODS" \
    --batch-size "$BATCH" --curve-batch-size 256 --no-progress > "$OUT/$m.log" 2>&1
  echo "$m: evaluate rc $? after $(( $(date +%s) - start )) s"
  tail -n 3 "$OUT/$m.log"
  cat "$run"/shards/rank*.jsonl > "$OUT/$m.jsonl"
  python3 - "$OUT/$m.jsonl" <<'EOF'
import collections, json, sys
recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
per = collections.Counter(r["method"] for r in recs if r.get("record") == "method")
print(" ", sum(r.get("record") == "case" for r in recs), "cases;", dict(per))
EOF
done
