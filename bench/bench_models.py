"""Training-step time of the papers' networks against their baselines, as ratios in one process.

    .venv/bin/python bench/bench_models.py [--rounds 5] [--batch 64] [--threads 1] [--models A,B]
        [--clock wall|cpu]

Goals: HBNet-56 / ResNet-56 ≤ 1.05, AGDNet-40 / DenseNet-40 ≤ 1.03, and the project's
ResNet-56 no slower than a plain hand-written ResNet-56. The multi-stream networks against the
network with the same T evaluations: QHMNet-56 and HBVNet-56 (one T per block, a second stream)
against HBNet-56, ≤ 1.10; EGNet-56 (two T per block) against twice ResNet-56, ≤ 1.05. Models are
timed in interleaved rounds (one step of each per round, after warm-up) and the median per model
is compared, so drift of a shared machine hits every model alike. `--models` times only the named
ones (a ratio is printed when both of its models ran); agdnet40-history-summed is AGDNet-40 with
its state sum formed over the whole history at every layer, as before the running accumulator;
qhmnet56-term-by-term is QHMNet-56 with each block's two updates formed term by term (every
product c·z and every sum its own operation and autograd node), as before the fused update.
Each ratio is of the medians (the goal's) and, in brackets, of the fastest steps. `--clock cpu`
times the process's CPU time instead of the elapsed time: on a machine shared with other jobs a
step then does not count the time it waited for a core. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from derive.models import create_model


class PlainBlock(nn.Module):
    """He et al. (2016) CIFAR basic block, shortcut A, written by hand as a baseline."""

    def __init__(self, c_in: int, c: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.stride, self.pad = stride, c - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.stride != 1 or self.pad:
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + x)


class PlainResNet56(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c_in = [], 16
        for w in (16, 32, 64):
            for b in range(9):
                blocks.append(PlainBlock(c_in if b == 0 else w, w, 2 if b == 0 and w != 16 else 1))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""wall: elapsed time; cpu: this process's CPU time, which waiting for a core on a shared machine
does not lengthen (with one torch thread the two agree on an idle machine)."""


def step_timer(model: nn.Module, batch: int, clock: Callable[[], float]) -> Callable[[], float]:
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step() -> float:
        start = clock()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        return clock() - start

    return step


def agdnet40_history_summed() -> nn.Module:
    """AGDNet-40 with its state sum formed over the whole history at every layer (no accumulator)."""
    model = create_model("agdnet40")
    for module in model.modules():
        if hasattr(module, "history_decay"):
            module.history_decay = None
    return model


def qhm_block_term_by_term(
    block: nn.Module,
    states: dict[str, list[torch.Tensor]],
    cached: dict[str, list[torch.Tensor]],
    stage_input: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A QHMNet block's forward with its updates written out, one operation a product or a sum."""
    z, zm = states["z"][0], states["zm"][0]
    t1 = block.branch(z if stage_input is None else stage_input)
    new_zm = block.zm_t1 * t1 + block.zm_z * z + block.zm_zm * zm
    new_z = block.z_t1 * t1 + block.z_z * z + block.z_zm_next * new_zm
    if block.post_activation is not None:
        new_z = block.post_activation(new_z)
    return {"zm": new_zm, "z": new_z}, {}


def qhmnet56_term_by_term() -> nn.Module:
    """QHMNet-56 whose blocks form their updates term by term (the same function and weights)."""
    model = create_model("qhmnet56")
    for module in model.modules():
        if type(module).__name__ == "QhmBlock":
            module.forward = MethodType(qhm_block_term_by_term, module)
    return model


PLAIN = "plain ResNet-56 (hand-written)"
SUMMED = "agdnet40-history-summed"
TERMWISE = "qhmnet56-term-by-term"
MODELS: dict[str, Callable[[], nn.Module]] = {
    PLAIN: PlainResNet56,
    **{
        name: partial(create_model, name)
        for name in (
            "resnet56",
            "hbnet56",
            "densenet40",
            "agdnet40",
            "qhmnet56",
            "hbvnet56",
            "egnet56",
        )
    },
    SUMMED: agdnet40_history_summed,
    TERMWISE: qhmnet56_term_by_term,
}
"""The timed models, built in this order."""

RATIOS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("hbnet56 / resnet56", ("hbnet56", "resnet56"), 1.0, 1.05),
    ("agdnet40 / densenet40", ("agdnet40", "densenet40"), 1.0, 1.03),
    ("history summed / densenet40", (SUMMED, "densenet40"), 1.0, 1.10),
    ("resnet56 / plain ResNet-56", ("resnet56", PLAIN), 1.0, 1.00),
    ("qhmnet56 / hbnet56", ("qhmnet56", "hbnet56"), 1.0, 1.10),
    ("qhm term by term / hbnet56", (TERMWISE, "hbnet56"), 1.0, 1.10),
    ("hbvnet56 / hbnet56", ("hbvnet56", "hbnet56"), 1.0, 1.10),
    ("egnet56 / (2 × resnet56)", ("egnet56", "resnet56"), 2.0, 1.05),
)
"""(label, (model, baseline), baseline multiple, goal): ratio = model / (multiple × baseline)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="comma-separated subset of: " + ", ".join(MODELS),
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown or not chosen:
        parser.error(f"--models: unknown {unknown or 'empty list'}; known: {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {name: MODELS[name]() for name in MODELS if name in chosen}
    clock = CLOCKS[args.clock]
    steps = {name: step_timer(model, args.batch, clock) for name, model in models.items()}
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step())
    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"# bench_models: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), batch {args.batch}, {args.rounds} interleaved rounds, CPU, {args.clock} clock"
    )
    print(f"{'model':34s} {'median step (s)':>16s} {'min':>8s} {'max':>8s}")
    for name, t in times.items():
        print(f"{name:34s} {median[name]:16.3f} {min(t):8.3f} {max(t):8.3f}")
    print()
    for label, (model, baseline), multiple, goal in RATIOS:
        if model in median and baseline in median:
            ratio = median[model] / (multiple * median[baseline])
            fastest = min(times[model]) / (multiple * min(times[baseline]))
            verdict = "met" if ratio <= goal else "MISSED"
            print(
                f"{label:34s} {ratio:6.3f}   goal <= {goal:.2f}   {verdict:6s}   "
                f"(fastest steps: {fastest:.3f})"
            )


if __name__ == "__main__":
    main()
