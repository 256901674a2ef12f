#!/usr/bin/env bash
# The small-budget NAS study on CIFAR-10-head (the 10 % subset of CIFAR-10 in ../shared/data), CPU:
# darts vs heavyball vs heavyball --hb-init vs agd, several seeds, at a reduced size that fits a few
# CPU-hours: 5 cells, 8 channels, 16x16 images, the first 2,000 training images (1,000 weight /
# 1,000 architecture half), batch 16, EPOCHS epochs (default 6); the rest is SCIS §9.3's recipe.
# Runs 2 searches at a time (PARALLEL), one thread each, under nice; resumable: run the same command
# again and every search continues after its last completed epoch (finished ones are skipped).
# Usage: bash bench/nas_study.sh [SEEDS...]        (default: 0 1 2)
# Then:  .venv/bin/python -m derive.experiments.nas_report      (writes docs/results/nas_study.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA=${DATA:-../shared/data/cifar-10-head}
export OUT=${OUT:-docs/results/nas-study}
export LOGS=${LOGS:-runs/nas-study-logs}
export EPOCHS=${EPOCHS:-6}
export SIZE="--cells 5 --channels 8 --image-size 16 --batch-size 16 --limit-images 2000"
SEEDS=${*:-0 1 2}
mkdir -p "$LOGS" "$OUT"

run_one() {
  local config=$1 seed=$2 space extra=""
  case $config in
    darts) space=darts ;;
    heavyball) space=heavyball ;;
    heavyball-hbinit) space=heavyball; extra=--hb-init ;;
    agd) space=agd ;;
    *) echo "unknown config $config" >&2; return 1 ;;
  esac
  local out=$OUT/$config-s$seed log=$LOGS/$config-s$seed.log
  echo "$(date -u +%FT%TZ) start $config seed $seed -> $out (log $log)"
  if OMP_NUM_THREADS=1 nice -n 10 .venv/bin/derive nas search --space "$space" $extra \
      --dataset cifar10 --data-dir "$DATA" --out "$out" $SIZE --epochs "$EPOCHS" --seed "$seed" \
      --device cpu --no-plot --progress-interval 300 --resume >>"$log" 2>&1; then
    echo "$(date -u +%FT%TZ) done  $config seed $seed"
  else
    echo "$(date -u +%FT%TZ) FAILED $config seed $seed (see $log)"
  fi
}
export -f run_one

for seed in $SEEDS; do
  for config in darts heavyball heavyball-hbinit agd; do echo "$config $seed"; done
done | xargs -P "${PARALLEL:-2}" -L 1 bash -c 'run_one "$@"' _
