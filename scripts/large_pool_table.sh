#!/usr/bin/env bash
# The opening tables of docs/results.md: every method on the four held-out sets of the large
# photo pool (EfficientNet-Lite0 and -Lite1, composites and grids), from the committed records,
# with today's `refined` (beta = 48, `gfi:research:c10_beta48` in these records) as the
# reference of the paired differences.
#
#   bash scripts/large_pool_table.sh > /tmp/large-pool.md
set -euo pipefail
cd "$(dirname "$0")/.."
B=docs/benchmark
python scripts/comparison_table.py \
  $B/efficientnet-lite0/composites-large $B/efficientnet-lite0/composites-large-scorecam \
  $B/efficientnet-lite0/composites-large-extremal $B/efficientnet-lite0/composites-large-rise \
  $B/efficientnet-lite1/composites-large $B/efficientnet-lite1/composites-large-extremal \
  $B/efficientnet-lite1/composites-large-rise \
  $B/efficientnet-lite0/grids-large $B/efficientnet-lite0/grids-large-extremal \
  $B/efficientnet-lite1/grids-large \
  --time cpu_seconds --reference '`refined`' --min-cases 16 \
  --methods gfi:research:c10_beta48,gfi:refined,gfi,gradcam,pgc_gradcam,gradcam++,scorecam,layercam,xgradcam,extremal_perturbation,rise,ig,occlusion,saliency,center \
  --label 'gfi:research:c10_beta48=`refined`' \
  --label 'gfi:refined=`refined` β = 6 (until 2026-12-07)' \
  --label 'gfi=`paper`' \
  --label 'gradcam=Grad-CAM (Captum)' --label 'pgc_gradcam=Grad-CAM (pytorch-grad-cam)' \
  --label 'gradcam++=GradCAM++' --label 'scorecam=ScoreCAM' --label 'layercam=LayerCAM' \
  --label 'xgradcam=XGradCAM' --label 'extremal_perturbation=extremal perturbation' \
  --label 'rise=RISE' --label 'ig=Integrated Gradients' --label 'occlusion=Occlusion' \
  --label 'saliency=Saliency' --label 'center=centre (ignores the model)'
