#!/usr/bin/env bash
# Commit the finished runs of the stability study and rebuild docs/results/stability.md (and its
# figures) from exactly the committed files, so tests/test_stability_report.py rebuilds it byte for
# byte from a clean checkout even while the study is still running.
# Usage: bash bench/stability_snapshot.sh ["commit message"]
set -euo pipefail
cd "$(dirname "$0")/.."
STUDY=docs/results/stability
MESSAGE=${1:-"Stability study: finished runs so far, and the doc rebuilt from them"}
# 1. stage the small files of every finished run (summary status completed or diverged) and its probe
.venv/bin/python - "$STUDY" <<'PY'
import subprocess, sys
from pathlib import Path
from derive.experiments.stability.readout import read_study
study = Path(sys.argv[1])
runs, probes = read_study(study)
paths = []
for r in runs:
    folder = Path(r.path)
    paths += [str(folder / n) for n in ("metrics.csv", "steps.csv", "summary.json") if (folder / n).exists()]
paths += [str(study / "probes" / f"{name}.json") for name in probes]
subprocess.run(["git", "add", "--", *paths], check=True)
print(f"staged {len(runs)} runs and {len(probes)} probes", file=sys.stderr)
PY
# 2. rebuild the doc and figures in an export of the index (only what is committed), copy them back
SNAP=$(mktemp -d)
trap 'rm -rf "$SNAP"' EXIT
git checkout-index -a --prefix="$SNAP/"
(cd "$SNAP" && "$OLDPWD/.venv/bin/python" -m derive stability report "$STUDY" --out docs/results/stability.md)
cp "$SNAP/docs/results/stability.md" docs/results/stability.md
cp "$SNAP/$STUDY"/*.png "$STUDY"/
git add docs/results/stability.md "$STUDY"/*.png
git commit -qm "$MESSAGE"
git log --oneline -1
