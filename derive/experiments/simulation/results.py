"""What a simulation produced: the curve points, one result per run, the data's reference values.

Plain data (no torch), shared by the training (`run`) and the output files (`files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from derive.experiments.simulation.config import SimulationConfig


@dataclass(frozen=True)
class CurvePoint:
    """The training set's MSE of one run after `epoch` epochs (0: at initialization)."""

    algorithm: str
    depth: int
    epoch: int
    train_mse: float  # whole training set, evaluated after the epoch
    batch_loss_mean: float | None  # mean of the epoch's mini-batch losses (None at epoch 0)
    seconds: float  # training seconds of this run so far


@dataclass
class RunResult:
    """One (algorithm, depth) run: its status, final MSE and cost."""

    algorithm: str
    depth: int
    status: str  # "completed" or "diverged" (a non-finite loss stopped it)
    epochs_completed: int
    final_train_mse: float | None
    parameters: int
    seconds: float
    compile_seconds: float = 0.0
    device: str = ""  # where it was trained (a resumed simulation may have moved)


@dataclass
class DataStats:
    """Reference values of the data that any honest reading of the table needs."""

    mean_f_squared: float  # the MSE of always predicting 0
    best_constant_mse: float  # the MSE of predicting each coordinate's sample mean of f
    mean_x0_squared: float


@dataclass
class SimulationResult:
    """Everything a run produced: the curves, one result per run, the data's reference values."""

    config: SimulationConfig
    data: DataStats
    runs: list[RunResult] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    device: str = ""
    wall_seconds: float = 0.0

    def final(self, algorithm: str, depth: int) -> RunResult | None:
        for run in self.runs:
            if (run.algorithm, run.depth) == (algorithm, depth):
                return run
        return None
