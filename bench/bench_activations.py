"""Benchmark `derive activation --all` (full proofs, cold process) and show each activation's time.

Usage: python bench/bench_activations.py [--format text|json|latex|markdown] [--repeat N]

Runs the CLI in a fresh subprocess (cold: imports, SymPy caches and all), prints the wall time of
the whole run against the 10 s budget and the per-activation timings (derive / symbolic proof /
numeric proof / papers) that `derive -v` logs, slowest first. Not a test: timings depend on the
machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 10.0
TIMING = re.compile(r"^timing: (\S+) ([0-9.]+) s \((.*)\)$")


def run_once(fmt: str) -> tuple[float, list[tuple[str, float, str]]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "derive", "-v", "activation", "--all", "--format", fmt]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"derive failed (exit {result.returncode}):\n{result.stderr}")
    rows = []
    for line in result.stderr.splitlines():
        match = TIMING.match(line.strip())
        if match:
            rows.append((match.group(1), float(match.group(2)), match.group(3)))
    return wall, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="text", choices=("text", "json", "latex", "markdown"))
    parser.add_argument(
        "--repeat", type=int, default=1, help="cold runs (the best wall time counts)"
    )
    args = parser.parse_args()
    runs = [run_once(args.format) for _ in range(max(1, args.repeat))]
    wall, rows = min(runs, key=lambda run: run[0])
    print(
        f"derive activation --all --format {args.format}: {wall:.2f} s wall, cold process "
        f"(budget {BUDGET_S:.0f} s: {'ok' if wall <= BUDGET_S else 'OVER'}; best of {len(runs)})"
    )
    print(
        f"  sum of per-activation times {sum(t for _, t, _ in rows):.2f} s "
        f"(the rest is start-up, imports and rendering)"
    )
    for name, total, parts in sorted(rows, key=lambda row: -row[1]):
        print(f"  {name:<12} {total:6.2f} s   {parts}")
    return 0 if wall <= BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
