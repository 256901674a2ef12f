#!/usr/bin/env bash
# The evaluation phase of the small-budget NAS study (bench/nas_study.sh), on CIFAR-10-head (the 10 %
# subset of CIFAR-10 in ../shared/data: 5,085 training / 1,017 test images), CPU.
# Every completed search in STUDY (docs/results/nas-study/<run>/genotype.json) is turned into its
# evaluation network at a reduced size, `derive nas network ... --channels 8 --cells 5` (the searched
# supernet's size; DARTS evaluates at 36 channels and 20 cells), and trained by
# `derive train NET.py --recipe darts-eval --epochs 4` (DARTS's evaluation recipe, SCIS §9.3: batch 96,
# SGD lr 0.025 cosine to 0, cutout 16, auxiliary weight 0.4, drop-path 0.2 rising, clipping 5; only
# the epochs shortened from 600 to 4), training seed 0 for every genotype, all 5,085 training images
# at 32x32, the test error measured on the 1,017 test images.
# As a noise floor, the published DARTS V2 cell (REFERENCE) is trained the same way with seeds 0 1 2.
# Cost measured on this 2-core machine: about 65 s of CPU time per epoch and 13 s to start, so ~4.4
# CPU-minutes per run and ~1.1 CPU-hours for the 12 searches and 3 reference runs.
# Runs PARALLEL (default 2) trainings at a time, one thread each, under nice; resumable: run the same
# command again and each run continues after its last completed epoch (finished ones are skipped), and
# searches finished since are evaluated. Runs train in OUT (runs/nas-eval, git-ignored, with their
# checkpoints); a finished run's metrics.csv, summary.json, the network file it trained and cost.json
# (the CPU time of its derive train sessions, by /usr/bin/time) are copied to RESULTS
# (docs/results/nas-eval/<run>), so the committed files only ever hold completed evaluations.
# Usage: bash bench/nas_eval_study.sh           log: runs/nas-eval.log (per run: runs/nas-eval-logs/)
# Then:  .venv/bin/derive nas report --study docs/results/nas-study --eval docs/results/nas-eval \
#            --out docs/results/nas_study.md
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA=${DATA:-../shared/data/cifar-10-head}
export STUDY=${STUDY:-docs/results/nas-study}
export OUT=${OUT:-runs/nas-eval}
export RESULTS=${RESULTS:-docs/results/nas-eval}
export LOGS=${LOGS:-runs/nas-eval-logs}
export EPOCHS=${EPOCHS:-4}
export CHANNELS=${CHANNELS:-8}
export CELLS=${CELLS:-5}
REFERENCE=${REFERENCE:-darts_v2}
REFERENCE_SEEDS=${REFERENCE_SEEDS:-0 1 2}
mkdir -p "$LOGS" "$OUT" "$RESULTS"

eval_one() {
  local name=$1 genotype=$2 seed=$3
  local out=$OUT/$name log=$LOGS/$name.log net
  if [ -f "$RESULTS/$name/summary.json" ]; then
    echo "$(date -u +%FT%TZ) skip  $name (already in $RESULTS)"
    return 0
  fi
  echo "$(date -u +%FT%TZ) start $name: $genotype, seed $seed -> $out (log $log)"
  mkdir -p "$out"
  if .venv/bin/derive nas network "$genotype" --out "$out" --channels "$CHANNELS" \
        --cells "$CELLS" 2>>"$log" \
    && net=$(sed -n 's/^wrote //p' "$log" | tail -n 1) && [ -n "$net" ] \
    && OMP_NUM_THREADS=1 nice -n 10 /usr/bin/time -f "%U %S" -a -o "$out/cpu_seconds.txt" \
        .venv/bin/derive train "$net" --recipe darts-eval --dataset cifar10 --data-dir "$DATA" \
        --out "$out" --epochs "$EPOCHS" --seed "$seed" --device cpu --progress-interval 300 \
        --resume >>"$log" 2>&1; then
    mkdir -p "$RESULTS/$name"
    .venv/bin/python - "$out/cpu_seconds.txt" "$RESULTS/$name/cost.json" <<'EOF'
import json, sys
sessions = [line.split() for line in open(sys.argv[1]) if line[:1].isdigit()]
cost = {
    "process_cpu_seconds": round(sum(float(u) + float(s) for u, s in sessions), 2),
    "sessions": len(sessions),
    "measured_by": "/usr/bin/time: user + system CPU time of each derive train session (bench/nas_eval_study.sh)",
}
open(sys.argv[2], "w").write(json.dumps(cost, indent=2) + "\n")
EOF
    cp "$out/metrics.csv" "$out/summary.json" "$net" "$RESULTS/$name/"
    echo "$(date -u +%FT%TZ) done  $name -> $RESULTS/$name"
  else
    echo "$(date -u +%FT%TZ) FAILED $name (see $log)"
  fi
}
export -f eval_one

{
  for summary in "$STUDY"/*/summary.json; do
    [ -f "$summary" ] || continue
    run=$(basename "$(dirname "$summary")")
    if grep -q '"status": "completed"' "$summary"; then echo "$run $STUDY/$run/genotype.json 0"; fi
  done
  for seed in $REFERENCE_SEEDS; do echo "$REFERENCE-s$seed $REFERENCE $seed"; done
} | xargs -P "${PARALLEL:-2}" -L 1 bash -c 'eval_one "$@"' _
