"""derive's memory-free HBNet side by side with momentumnet's memory-free Momentum ResNet (CPU).

    pip install -e '.[bench]'      # momentumnet (Sander et al., ICML 2021), bench-only
    .venv/bin/python bench/bench_peers_memory.py [--depths 110,164] [--batch 64] [--rounds 5]
        [--threads 1] [--out docs/results/bench_peers_memory.md]   (about 15 minutes here)

Four networks per depth, all with the same T, the same stages and the same weights (each is built
from `derive.models.create_model(f"prehbnet{depth}")` after `torch.manual_seed(0)`):

- derive standard: the pre-activation HBNet, zₖ₊₁ = T_k(zₖ) + zₖ − zₖ₋₁, plain autograd;
- derive reversible: the same network with `memory="reversible"`;
- momentumnet backprop / memory-free: each stage's first block as in derive (it carries the
  stride and the shortcut), then `momentumnet.MomentumNet([T_1, …, T_(K−1)], gamma=0.9,
  use_backprop=True | False)` over the same branches T_k, as `transform_to_momentumnet`
  (keep_first_layer=True, is_residual=True: the branches are residual functions) builds it:
  v ← γv + (1 − γ)T_k(x), x ← x + v, with v kept exactly in fixed point (its TorchExactRep).

Measured, in one process and interleaved rounds where it says so:

1. saved bytes of a training step: the distinct storages autograd saves for backward
   (`torch.autograd.graph.saved_tensors_hooks`, which see what a custom Function saves too),
   parameters left out.
2. peak RSS: a fresh process per network builds it, resets the kernel's high-water mark and runs
   one SGD step; the peak minus the RSS before the step. Twice: with glibc's own allocator
   behaviour, and with the one `derive train --memory checkpoint|reversible` sets
   (derive.allocator: large freed blocks go back to the system).
3. step time: the median of interleaved rounds (one step of each network per round, after a
   warm-up step), as a ratio to derive standard; the floor is one forward without a graph more.
4. gradient agreement: ‖g − g_ref‖ / ‖g_ref‖ over the parameter gradients of one batch, each
   memory-free network against its own backprop twin (float32).
5. where the time goes: one step of each memory-free network under torch.profiler, self CPU time
   per kind of operator.

momentumnet does not guard BatchNorm's running statistics (its recomputation updates them a
second time) nor replay the RNG; derive does both (docs/memory.md). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_memory import batch, forward_fn, saved_bytes, step_fn  # noqa: E402

from derive import allocator  # noqa: E402
from derive.models import create_model  # noqa: E402

NETWORKS = (
    "derive standard",
    "derive reversible",
    "momentumnet backprop",
    "momentumnet memory-free",
)
GAMMA = 0.9
INSTALL = "momentumnet is not installed: pip install -e '.[bench]' (or pip install momentumnet)"


def momentumnet_class() -> type:
    try:
        from momentumnet import MomentumNet
    except ImportError:
        print(f"bench_peers_memory: {INSTALL}", file=sys.stderr)
        raise SystemExit(2) from None
    return MomentumNet


class MomentumStage(nn.Module):
    """A derive stage's first block, then momentumnet over the branches of the others."""

    def __init__(self, stage: nn.Module, use_backprop: bool) -> None:
        super().__init__()
        self.shortcut = stage.shortcut
        self.first = stage.blocks[0]
        branches = [block.branch for block in list(stage.blocks)[1:]]
        self.rest = momentumnet_class()(branches, gamma=GAMMA, use_backprop=use_backprop)

    def forward(self, stage_input: torch.Tensor) -> torch.Tensor:
        z0 = self.shortcut(stage_input)
        return self.rest(self.first([z0, z0], stage_input))


def build(depth: int, network: str) -> nn.Module:
    """`network` at `depth`, every one from the same seed, so the same T weights."""
    torch.manual_seed(0)
    memory = "reversible" if network == "derive reversible" else "standard"
    model = create_model(f"prehbnet{depth}", memory=memory).train()
    if network.startswith("momentumnet"):
        use_backprop = network == "momentumnet backprop"
        for i, stage in enumerate(list(model.stages)):
            if hasattr(stage, "blocks"):  # not the bottleneck nets' shared BN-ReLU
                model.stages[i] = MomentumStage(stage, use_backprop)
    return model


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(depth: int, network: str, size: int, allocation: str) -> None:
    """One SGD step in this fresh process; prints {"before": KiB, "peak": KiB}."""
    if allocation == "derive":
        allocator.configure_for("reversible")
    model = build(depth, network)
    x, y = batch(size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    print(json.dumps({"before": before, "peak": _status_kib("VmHWM")}))


def peak_rss(depth: int, network: str, size: int, threads: int, allocation: str) -> float:
    """MiB above the pre-step RSS at the peak of one step, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--child", str(depth), network, allocation]
    command += ["--batch", str(size), "--threads", str(threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return (result["peak"] - result["before"]) / 1024


def gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


KINDS = (
    ("convolution", ("conv",)),
    ("batch norm", ("batch_norm",)),
    ("relu", ("relu", "threshold", "clamp")),
    ("integer (fixed-point v)", ("remainder", "div", "bitwise", "_to_copy", "lshift", "rshift")),
)


def kind_of(name: str) -> str:
    if not name.startswith("aten::"):
        return "outside ATen (Python, autograd)"
    for kind, words in KINDS:
        if any(w in name for w in words):
            return kind
    return "element-wise and other ATen"


def op_profile(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Seconds of self CPU time per kind of operator in one training step."""
    from torch.profiler import ProfilerActivity, profile

    gradient(model, x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        gradient(model, x, y)
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        kind = kind_of(event.key)
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total / 1e6
    return kinds


def measure(depth: int, args: argparse.Namespace) -> dict:
    print(f"prehbnet{depth} …", file=sys.stderr, flush=True)
    x, y = batch(args.batch)
    models = {network: build(depth, network) for network in NETWORKS}
    row: dict = {"depth": depth, "saved": {}, "rss": {}, "rss_derive": {}, "time": {}}
    for network, model in models.items():
        row["saved"][network] = saved_bytes(model, x, y) / 2**20
    for allocation, key in (("default", "rss"), ("derive", "rss_derive")):
        for network in NETWORKS:
            row[key][network] = peak_rss(depth, network, args.batch, args.threads, allocation)
    grads = {network: gradient(model, x, y) for network, model in models.items()}
    row["agreement"] = {
        "derive reversible vs derive standard": relative(
            grads["derive reversible"], grads["derive standard"]
        ),
        "momentumnet memory-free vs momentumnet backprop": relative(
            grads["momentumnet memory-free"], grads["momentumnet backprop"]
        ),
    }
    del grads
    steps = {network: step_fn(model, x, y) for network, model in models.items()}
    steps["forward"] = forward_fn(models["derive standard"], x)
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step())
    row["time"] = {name: statistics.median(t) for name, t in times.items()}
    row["profile"] = {
        network: op_profile(copy.deepcopy(models[network]), x, y)
        for network in ("derive reversible", "momentumnet memory-free")
    }
    return row


def verdict(rows: list[dict]) -> list[str]:
    """derive reversible against momentumnet memory-free, per depth, from the numbers above."""
    ours, theirs = "derive reversible", "momentumnet memory-free"
    lines = ["## Verdict", ""]
    for r in rows:
        agreement = list(r["agreement"].values())
        measures = {
            "saved bytes": (r["saved"][ours], r["saved"][theirs]),
            "peak RSS with derive's allocator": (r["rss_derive"][ours], r["rss_derive"][theirs]),
            "peak RSS with glibc's own": (r["rss"][ours], r["rss"][theirs]),
            "step time": (r["time"][ours], r["time"][theirs]),
            "gradient error against its backprop twin": (agreement[0], agreement[1]),
        }
        behind = [name for name, (a, b) in measures.items() if a > b]
        lines.append(
            f"- prehbnet{r['depth']}: derive / momentumnet "
            + ", ".join(f"{name} {a / b:.2f}" for name, (a, b) in measures.items())
            + (
                f"; derive is behind on {', '.join(behind)}."
                if behind
                else "; derive is ahead on every measure."
            )
        )
    return lines


def render(rows: list[dict], args: argparse.Namespace) -> str:
    import momentumnet

    load = os.getloadavg()
    lines = [
        "# Benchmark: derive's memory-free HBNet and momentumnet's memory-free Momentum ResNet",
        "",
        f"Command: `.venv/bin/python bench/bench_peers_memory.py --depths {args.depths} "
        f"--batch {args.batch} --rounds {args.rounds} --threads {args.threads} "
        "--out docs/results/bench_peers_memory.md`.",
        f"Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared "
        f"with other jobs (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over 1 / 5 "
        f"/ 15 minutes at the end), {args.threads} torch thread(s), torch {torch.__version__}, "
        f"momentumnet {getattr(momentumnet, '__version__', '?')}, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}. No GPU was measured.",
        "",
        f"Networks: prehbnet{{depth}}'s stem, stages, head and T (random init, training mode), "
        f"batch {args.batch} of 3×32×32 in float32, SGD with momentum; momentumnet with "
        f"γ = {GAMMA} over the same branches (the methods are in the script's docstring).",
        "",
    ]
    for r in rows:
        base_saved = r["saved"]["derive standard"]
        base_rss = r["rss"]["derive standard"]
        base_time = r["time"]["derive standard"]
        lines += [
            f"## prehbnet{r['depth']}",
            "",
            "| network | saved MiB | ratio | peak RSS MiB, glibc's own | ratio "
            "| peak RSS MiB, derive's allocator | ratio | step s | ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for network in NETWORKS:
            lines.append(
                f"| {network} | {r['saved'][network]:.1f} | {r['saved'][network] / base_saved:.3f} "
                f"| {r['rss'][network]:.0f} | {r['rss'][network] / base_rss:.2f} "
                f"| {r['rss_derive'][network]:.0f} | {r['rss_derive'][network] / base_rss:.2f} "
                f"| {r['time'][network]:.3f} | {r['time'][network] / base_time:.2f}× |"
            )
        lines += [
            "",
            "Ratios are to derive standard with glibc's own allocator (what a standard run uses). "
            f"Floor of a memory-free step (one forward without a graph more): "
            f"{1 + r['time']['forward'] / base_time:.2f}×.",
            "",
            "| gradient agreement (float32, one batch) | ‖g − g_ref‖ / ‖g_ref‖ |",
            "|---|---|",
            *(f"| {k} | {v:.2e} |" for k, v in r["agreement"].items()),
            "",
            "| self CPU seconds of one step (torch.profiler) | " + " | ".join(r["profile"]) + " |",
            "|---|---|---|",
        ]
        kinds = sorted({k for p in r["profile"].values() for k in p})
        for kind in kinds:
            lines.append(
                f"| {kind} | "
                + " | ".join(f"{p.get(kind, 0.0):.3f}" for p in r["profile"].values())
                + " |"
            )
        lines.append("")
    lines += verdict(rows)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="110,164")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    momentumnet_class()
    if args.child:
        child(int(args.child[0]), args.child[1], args.batch, args.child[2])
        return
    rows = [measure(int(d), args) for d in args.depths.split(",")]
    report = render(rows, args)
    print(report)
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
