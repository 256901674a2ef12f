"""The simulation of SCIS'23 appendix B.3 / ACML'18 §5.3 (`derive simulate`): untied fc networks fit random targets.

    from derive.experiments.simulation.config import SimulationConfig
    from derive.experiments.simulation.run import run_simulation
    result = run_simulation(SimulationConfig().quick_version(), out_dir="runs/simulation-quick")

What is where (each module imports only the ones above it in this list, so there is no import cycle):

- `config`: the options (`SimulationConfig`), the five networks compared and the quick settings.
- `results`: what a simulation produced (curve points, one result per run, the data's reference values).
- `table`: simulation.md's markdown (our final MSE beside the papers' printed table, the settings).
- `plot`: simulation.png (train MSE against epoch, one panel per depth).
- `files`: the output folder's files (curves.csv, final.csv, simulation.json, .md, .png), written
  and read back.
- `run`: the training (imports torch), writing the files as it goes; resuming a stopped run.

Importing this package imports none of them (so `derive --help` does not load torch).
"""
