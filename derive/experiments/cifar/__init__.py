"""The CIFAR results doc (`derive report`): our `derive train` runs beside the papers' printed tables.

- `runs`: reads a `derive train` run folder (summary.json, metrics.csv), finds the folders under a
  root and groups runs of one model, data, augmentation and recipe over seeds.
- `report`: the doc's tables (full-data runs beside SCIS Table 1 / ACML Table 4, subsets, pairs by
  seed with exact paired tests, every run) and the simulation's section.
"""
