"""derive: turn optimization algorithms into neural network architectures.

The pipeline runs one way (see DESIGN in docs/architecture.md):
activation -> energy and proofs (derive.symbolic) -> algorithm and layer recurrence (derive.algorithms)
-> generated PyTorch code (derive.codegen, templates/, generated/) -> model zoo (derive.models)
-> training and experiments (derive.train, derive.experiments).
"""

__version__ = "0.1.0"
