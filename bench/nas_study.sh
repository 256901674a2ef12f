#!/usr/bin/env bash
# The small-budget NAS study on CIFAR-10-head (the 10 % subset of CIFAR-10 in ../shared/data), CPU:
# darts vs heavyball vs heavyball --hb-init vs agd, several seeds, at a reduced size that fits a few
# CPU-hours: 5 cells, 8 channels, 16x16 images, the first 2,000 training images (1,000 weight /
# 1,000 architecture half), batch 16, EPOCHS epochs (default 6); the rest is SCIS §9.3's recipe.
# Runs 2 searches at a time (PARALLEL), one thread each, under nice; resumable: run the same command
# again and every search continues after its last completed epoch (finished ones are skipped).
# Searches run in OUT (runs/nas-study, git-ignored, with their checkpoints); a finished search's
# genotype.json, metrics.csv and summary.json are copied to RESULTS (docs/results/nas-study), the
# committed study, so the committed files only ever hold completed searches.
# Usage: bash bench/nas_study.sh [SEEDS...]        (default: 0 1 2); log: runs/nas-study.log
# Then:  .venv/bin/derive nas report --study docs/results/nas-study --out docs/results/nas_study.md
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA=${DATA:-../shared/data/cifar-10-head}
export OUT=${OUT:-runs/nas-study}
export RESULTS=${RESULTS:-docs/results/nas-study}
export LOGS=${LOGS:-runs/nas-study-logs}
export EPOCHS=${EPOCHS:-6}
export SIZE="--cells 5 --channels 8 --image-size 16 --batch-size 16 --limit-images 2000"
SEEDS=${*:-0 1 2}
mkdir -p "$LOGS" "$OUT" "$RESULTS"

run_one() {
  local config=$1 seed=$2 space extra=""
  case $config in
    darts) space=darts ;;
    heavyball) space=heavyball ;;
    heavyball-hbinit) space=heavyball; extra=--hb-init ;;
    agd) space=agd ;;
    *) echo "unknown config $config" >&2; return 1 ;;
  esac
  local name=$config-s$seed
  local out=$OUT/$name log=$LOGS/$name.log
  if [ -f "$RESULTS/$name/summary.json" ]; then
    echo "$(date -u +%FT%TZ) skip  $config seed $seed (already in $RESULTS)"
    return 0
  fi
  echo "$(date -u +%FT%TZ) start $config seed $seed -> $out (log $log)"
  if OMP_NUM_THREADS=1 nice -n 10 .venv/bin/derive nas search --space "$space" $extra \
      --dataset cifar10 --data-dir "$DATA" --out "$out" $SIZE --epochs "$EPOCHS" --seed "$seed" \
      --device cpu --no-plot --progress-interval 300 --resume >>"$log" 2>&1; then
    mkdir -p "$RESULTS/$name"
    cp "$out/genotype.json" "$out/metrics.csv" "$out/summary.json" "$RESULTS/$name/"
    echo "$(date -u +%FT%TZ) done  $config seed $seed -> $RESULTS/$name"
  else
    echo "$(date -u +%FT%TZ) FAILED $config seed $seed (see $log)"
  fi
}
export -f run_one

for seed in $SEEDS; do
  for config in darts heavyball heavyball-hbinit agd; do echo "$config $seed"; done
done | xargs -P "${PARALLEL:-2}" -L 1 bash -c 'run_one "$@"' _
