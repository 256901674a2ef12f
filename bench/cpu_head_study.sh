#!/usr/bin/env bash
# A real-data study that fits a CPU: ResNet-56 vs HBNet-56 on CIFAR-10-head (the 10 % subset of
# CIFAR-10 in ../shared/data), the papers' recipe with augmentation, a shortened schedule of the same
# shape (lr 0.1, /10 at 50 % and 75 % of the epochs), the same seeds for both members of the pair.
# Usage: bash bench/cpu_head_study.sh [EPOCHS] [SEEDS...]   (defaults: 8 epochs, seeds 0 1)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-8}; shift || true
SEEDS=${*:-0 1}
DATA=${DATA:-../shared/data/cifar-10-head}
export OMP_NUM_THREADS=1
for seed in $SEEDS; do
  for model in resnet56 hbnet56; do
    out=docs/results/runs/cifar10-head-cpu/$model-e$EPOCHS-s$seed
    .venv/bin/derive train "$model" --dataset cifar10 --data-dir "$DATA" --out "$out" \
      --epochs "$EPOCHS" --seed "$seed" --device cpu --progress-interval 60 --resume
  done
done
