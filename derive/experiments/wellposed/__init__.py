"""The well-posed simulation: networks learn an energy's minimiser, beside the optimizers' errors.

teacher (the energy and its exact answers), study (one run), files (study.json, runs.csv),
runner (the grid, resumable), report (docs/results/simulation_wellposed.md and its figure).
"""
