"""The well-posed task: the answer to an input is the minimiser of a teacher's energy.

Teacher: U* symmetric positive definite, W* = U*², Φ = sigmoid, and for an input z₀
    F(x; z₀) = ‖x‖²/2 − Σᵢ Ψ(U*ᵢᵀx) − ⟨b, x⟩,   b = U* z₀,   ∇F(x) = x − U*Φ(U*x) − b.
The hessian I − U* diag(Φ′) U* lies between (1 − λ_max/4)·I and I (Φ′ ≤ 1/4), so choosing the
spectrum of W* in [λ_max/100, λ_max] with λ_max = 4(1 − 1/κ) makes F 1-smooth and 1/κ-strongly
convex: κ bounds its condition number. In z = U*⁻¹x the minimiser solves z = Φ(W*z) + z₀, found
here by Newton's method in float64 and checked (‖∇F(x*)‖∞ < 1e-12, else an error).
Every algorithm starts at x₀ = U* z₀, so the network's input is z₀ alone (start and injection).
Inputs are drawn around −Φ(0) = −1/2, so that W*z* stays where Φ is steepest and κ is felt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEWTON_STEPS = 100
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Teacher:
    """W* = U*², its square root U* and the bound κ on the energy's condition number."""

    weight: np.ndarray
    root: np.ndarray
    kappa: float


@dataclass(frozen=True)
class Pairs:
    """Inputs z₀ (rows) and their answers z* = U*⁻¹ argmin F(·; z₀), float64."""

    inputs: np.ndarray
    targets: np.ndarray


def make_teacher(dim: int, kappa: float, rng: np.random.Generator) -> Teacher:
    """A random orthogonal basis with the spectrum λ_max·linspace(1/100, 1, dim)."""
    if kappa <= 1:
        raise ValueError(f"kappa must be > 1, got {kappa}")
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = 4 * (1 - 1 / kappa) * np.linspace(0.01, 1.0, dim)
    weight = (basis * spectrum) @ basis.T
    root = (basis * np.sqrt(spectrum)) @ basis.T
    return Teacher((weight + weight.T) / 2, (root + root.T) / 2, kappa)


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-values))


def solve_targets(teacher: Teacher, inputs: np.ndarray) -> np.ndarray:
    """z* with z* − Φ(W*z*) − z₀ = 0 for every row, by Newton's method; checked in x-space."""
    z = inputs.copy()
    eye = np.eye(teacher.weight.shape[0])
    for _ in range(NEWTON_STEPS):
        pre = z @ teacher.weight
        residual = z - sigmoid(pre) - inputs
        if np.abs(residual).max() < TOLERANCE / 10:
            break
        slope = sigmoid(pre) * (1 - sigmoid(pre))  # Φ′ at W*z, per row
        jacobians = eye - slope[:, :, None] * teacher.weight[None, :, :]
        z = z - np.linalg.solve(jacobians, residual[:, :, None])[:, :, 0]
    x, b = z @ teacher.root, inputs @ teacher.root
    gradient = x - sigmoid(x @ teacher.root) @ teacher.root - b
    if np.abs(gradient).max() >= TOLERANCE:
        raise ArithmeticError(f"Newton's method did not converge: |∇F| = {np.abs(gradient).max()}")
    return z


def make_pairs(
    teacher: Teacher, samples: int, rng: np.random.Generator, mean: float, std: float
) -> Pairs:
    """`samples` inputs z₀ ~ N(mean, std²·I) and their minimisers."""
    inputs = mean + std * rng.normal(size=(samples, teacher.weight.shape[0]))
    return Pairs(inputs, solve_targets(teacher, inputs))
