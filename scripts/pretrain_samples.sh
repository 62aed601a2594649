#!/usr/bin/env bash
# The main job on a fresh clone: `tiny` SimIPU pre-training on the shipped data_samples/ (CPU, minutes).
# Leaves runs/tiny/: checkpoints, the exported ResNet backbone, TensorBoard logs, loss_curve.png, summary.json.
# Extra arguments go to `simipu pretrain`, e.g.  bash scripts/pretrain_samples.sh train.max_steps=20
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec simipu pretrain --config tiny --data-root data_samples --out runs/tiny "$@"
