"""The depth-stability study: does the heavy-ball skip keep deep networks trainable without warm-up?

One job per module: `plan` fixes the arms and the criteria before any run, `jobs` runs the training
jobs, `probe` measures each trained network's blocks, `readout` computes each run's figures from its
files, `report` writes docs/results/stability.md and `charts` draws its figures.
"""
