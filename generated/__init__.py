"""Generated PyTorch code: the output of `derive network` for the built-in algorithms.

Do not edit by hand: `make regenerate` (or `derive regenerate`) rewrites every file here, and
tests/test_generated_fresh.py fails when a file differs from what the templates produce.
"""
