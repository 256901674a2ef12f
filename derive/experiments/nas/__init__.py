"""The NAS study's results doc: `eval_runs` reads the evaluation runs of the searched cells and
`report` writes docs/results/nas.md from them and from the search runs."""
