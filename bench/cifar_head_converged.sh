#!/usr/bin/env bash
# The converged HBNet-vs-ResNet study on CIFAR-10-head, as planned in
# docs/results/cifar-head-converged/PLAN.md: ResNet-20, HBNet-20, ResNet-32, HBNet-32, the same seeds
# for both members of a pair, EPOCHS epochs of the papers' recipe (derive train's defaults: SGD
# Nesterov 0.9, weight decay 1e-4, batch 64, lr 0.1 divided by 10 at 50 % and 75 % of the epochs,
# pad 4 + crop + flip), bf16 autocast and channels_last on the CPU, one torch thread per process.
#
# Usage: bash bench/cifar_head_converged.sh [PROCS] [SEEDS...]   (defaults: 1 process, seeds 0-9)
#   PROCS trainings at a time (seed by seed: with 2, both members of a pair train together).
# Environment: EPOCHS (default 120), MODELS (default "resnet20 hbnet20 resnet32 hbnet32"),
#   DATA (default ../shared/data/cifar-10-head), WORK and DONE (the folders below).
#
# Each run trains in WORK/MODEL-eE-sS (default WORK=runs/cifar10-head-converged, ignored by git:
# it holds checkpoint.pt and the run's log) and, once completed, its metrics.csv and summary.json
# are copied to DONE/MODEL-eE-sS (default docs/results/runs/cifar10-head-converged), the folder
# `derive report` reads, and the two docs built from it are rebuilt: docs/results/cifar.md (every
# run) and docs/results/cifar-head-converged/study.md (this study, with its exact paired tests);
# commit the new folder with both. Unfinished runs stay out of docs/results/runs: the committed
# results docs are rebuilt from every run folder there.
# A run already in DONE is skipped; one stopped part-way continues with --resume from its last
# checkpoint (within an epoch too). Stop with Ctrl-C or `kill -TERM PID` (PID: this script's):
# every training writes a checkpoint and exits, and the next start goes on from there.
# ResNet-32 and HBNet-32 are built from docs/results/cifar-head-converged/heavyball_conv.py (a copy
# of the generated heavy-ball conv module, frozen for the study) with the papers' arguments its
# docstring gives; ResNet-20 and HBNet-20 are the zoo's.
set -uo pipefail
cd "$(dirname "$0")/.."
PROCS=${1:-1}
shift || true
SEEDS=${*:-0 1 2 3 4 5 6 7 8 9}
EPOCHS=${EPOCHS:-120}
MODELS=${MODELS:-resnet20 hbnet20 resnet32 hbnet32}
DATA=${DATA:-../shared/data/cifar-10-head}
WORK=${WORK:-runs/cifar10-head-converged}
DONE=${DONE:-docs/results/runs/cifar10-head-converged}
FILE=docs/results/cifar-head-converged/heavyball_conv.py
export OMP_NUM_THREADS=1

bad() { echo "cifar_head_converged.sh: $1" >&2; exit 2; }
[[ $PROCS =~ ^[1-9][0-9]?$ ]] || bad "PROCS must be a whole number from 1 to 99, got '$PROCS'"
[[ $EPOCHS =~ ^[1-9][0-9]{0,3}$ ]] || bad "EPOCHS must be a whole number from 1 to 9999, got '$EPOCHS'"
for seed in $SEEDS; do [[ $seed =~ ^[0-9]{1,9}$ ]] || bad "a seed must be a whole number, got '$seed'"; done

model_words() { # the derive train MODEL words of a study name
  case $1 in
    resnet20 | hbnet20) echo "$1" ;;
    resnet32) echo "$FILE --model-arg depth=32 --model-arg coefficients.beta1=1.0 --model-arg coefficients.beta2=0.0 --model-arg modes.beta2=pruned" ;;
    hbnet32) echo "$FILE --model-arg depth=32 --model-arg coefficients.beta1=1.0 --model-arg coefficients.beta2=-1.0" ;;
    *) return 1 ;;
  esac
}
for model in $MODELS; do model_words "$model" >/dev/null || bad "unknown model '$model' (resnet20 hbnet20 resnet32 hbnet32)"; done

completed() { # whether RUN_DIR's summary.json says the run completed
  .venv/bin/python -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["status"] != "completed")' \
    "$1/summary.json" 2>/dev/null
}

run_one() { # train MODEL with SEED in WORK (resuming), then copy its results to DONE
  local model=$1 seed=$2
  local name=$model-e$EPOCHS-s$seed
  local work=$WORK/$name done=$DONE/$name
  if completed "$done"; then
    echo "$name: already in $done"
    return 0
  fi
  if ! completed "$work"; then
    echo "$name: training (log: $WORK/$name.log)"
    # shellcheck disable=SC2046  # model_words gives several words on purpose
    .venv/bin/derive train $(model_words "$model") --dataset cifar10 --data-dir "$DATA" \
      --out "$work" --epochs "$EPOCHS" --seed "$seed" --device cpu --threads 1 \
      --precision bf16 --memory-format channels_last --progress-interval 300 --resume \
      >>"$WORK/$name.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$WORK/$name.pid"
    wait "$pid"
    local status=$?
    rm -f "$WORK/$name.pid"
    if [[ $status -ne 0 ]]; then
      echo "$name: stopped with status $status (see $WORK/$name.log; run again to resume)"
      return "$status"
    fi
  fi
  mkdir -p "$DONE" && rm -rf "$done.partial" && mkdir "$done.partial" &&
    cp "$work/metrics.csv" "$work/summary.json" "$done.partial/" && mv "$done.partial" "$done" &&
    echo "$name: completed, results in $done" && rebuild_docs
}

rebuild_docs() { # the results docs the committed run folders feed (tests rebuild them byte for byte)
  [[ $DONE == docs/results/runs/cifar10-head-converged ]] || return 0
  .venv/bin/derive -q report --runs-root docs/results/runs --simulation docs/results/simulation \
    --out docs/results/cifar.md >/dev/null &&
    .venv/bin/derive -q report --runs-root "$DONE" --paired-tests \
      --out docs/results/cifar-head-converged/study.md >/dev/null &&
    echo "rebuilt docs/results/cifar.md and docs/results/cifar-head-converged/study.md"
}

stop() { # Ctrl-C / SIGTERM: each training checkpoints and exits
  trap - INT TERM
  echo "stopping: every training writes a checkpoint; run again to resume" >&2
  # SIGTERM, which derive train handles like Ctrl-C: a shell starts background jobs with SIGINT
  # ignored, so an INT would not reach the trainings.
  for f in "$WORK"/*.pid; do
    [[ -e $f ]] && kill -TERM "$(cat "$f")" 2>/dev/null
  done
  wait
  exit 130
}
trap stop INT TERM

mkdir -p "$WORK"
for seed in $SEEDS; do
  for model in $MODELS; do
    while (($(jobs -rp | wc -l) >= PROCS)); do wait -n; done
    run_one "$model" "$seed" &
  done
done
wait
