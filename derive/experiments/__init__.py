"""Experiments over the generated networks, and the results docs built from their outputs.

    from derive.experiments import SimulationConfig, run_simulation
    result = run_simulation(SimulationConfig().quick_version(), out_dir="runs/simulation-quick")

    from derive.experiments import build_report
    text = build_report(["runs/hbnet56-c10"], simulation="docs/results/simulation")

One package per study: `stability/` the depth-stability study, `nas/` the NAS study's doc,
`simulation/` the simulation (its options, training, output files, table and figure), `wellposed/`
the well-posed simulation, `cifar/` the CIFAR report (`runs` reads and groups `derive train` run
folders, `report` writes the doc); `claims` the claims page. Shared by all: `tables` (markdown
tables, writing a report file, finding run folders), `paper_tables` the papers' printed tables as
data, `stats` the exact statistics (mean ± std; permutation, sign-flip, sign and Fisher tests). The
reports' sentences are Jinja templates under templates/; the numbers are computed here and passed
to them.
"""

from __future__ import annotations

import importlib

# Resolved on first use, so importing the package does not import torch.
_EXPORTS = {
    "SimulationConfig": "derive.experiments.simulation.config",
    "SimulationResult": "derive.experiments.simulation.results",
    "run_simulation": "derive.experiments.simulation.run",
    "read_simulation": "derive.experiments.simulation.files",
    "simulation_markdown": "derive.experiments.simulation.table",
    "collect_runs": "derive.experiments.cifar.runs",
    "build_report": "derive.experiments.cifar.report",
    "write_report": "derive.experiments.tables",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'derive.experiments' has no attribute {name!r}")
