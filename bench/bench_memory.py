"""Activation memory and time of one training step against depth: standard, checkpoint, reversible.

    .venv/bin/python bench/bench_memory.py [--depths 20,56,110,164,1001] [--batch 8] [--rounds 3]
        [--goal-batch 64] [--threads 1] [--out docs/results/bench_memory.md]
        (about 30 minutes on this CPU)

For the pre-activation HBNets prehbnet{depth} (basic units at 20/56/110, bottleneck units at
164/1001), each memory mode (derive.models.memory) is measured three ways:

1. saved bytes: the distinct storages autograd saves for backward during the forward pass, seen by
   `torch.autograd.graph.saved_tensors_hooks` (which also sees what a custom autograd.Function
   saves), parameters left out. torch.utils.checkpoint keeps each block's inputs itself, out of
   the hooks' sight (its own hooks take over inside the block), so for `checkpoint` the storages
   of the checkpointed blocks' inputs are added (recorded by forward pre-hooks).
2. peak RSS: a fresh subprocess sets the allocator up as `derive train` does for the mode
   (derive.allocator: glibc's own behaviour for standard, large freed blocks returned to the
   system for checkpoint and reversible), builds the model, resets the kernel's high-water mark
   (/proc/self/clear_refs) and runs one step; the peak minus the RSS before the step. It includes
   the parameter gradients, allocator slack and the transient memory of backward. Reversible is
   also measured with glibc's own behaviour, and prehbnet110 at --goal-batch in all three modes.
3. step time: the median of interleaved rounds in one process (one step of each mode per round,
   after a warm-up step), as a ratio to standard. Before each step the allocator thresholds are
   set as the mode's run has them: derive's (1 MiB, 2 MiB) for checkpoint and reversible, and for
   standard fixed at 32 MiB (mmap) and 64 MiB (trim), where glibc's own rising thresholds settle
   once a step has freed its largest tensor (every tensor here is smaller). Reversible is timed
   with the standard setting too, which shows what derive's allocator setting costs.

It also reports the reconstruction error of the reversible backward: per stage, a standard forward
keeps every state; `derive.models.memory.reconstruct` runs the stage backwards from its two newest
states; the error is max|ẑ − z| / max|z| over the recovered z₁, z₀ (the largest over the stages),
in float64, float32, under bf16 autocast with the float32 stream the reversible mode keeps, and with
the whole network in bf16 (a bf16 stream, for contrast). Random initialization (the papers' init),
training mode, one batch: trained weights can behave differently.

It also compares gradients of one batch (prehbnet56, batch 64): both modes in float32 against the
float64 standard gradient, and the float64 gradient's sensitivity to perturbing T's inputs.

Goals: reversible saved bytes flat in depth (prehbnet164 within 1.2× of prehbnet20) and ≤ 0.25×
standard at depth 110; peak RSS of reversible and checkpoint ≤ 0.30× standard for prehbnet110 at
batch 64; reversible step ≤ 1.5× standard at every depth. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from derive import allocator
from derive.models import create_model
from derive.models.memory import MEMORY_MODES, checkpoint_units, reconstruct, set_memory

ROOT = Path(__file__).resolve().parents[1]


def batch(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g)


def build(depth: int, mode: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(f"prehbnet{depth}", memory=mode).train()


def saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct storages kept for backward by one forward (see the module docstring)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def keep(t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        keep(t)
        return t

    def inputs(module: nn.Module, args: tuple) -> None:
        for a in args:
            for t in a if isinstance(a, (list, tuple)) else [a]:
                if isinstance(t, torch.Tensor):
                    keep(t)

    hooks = []
    if any(m.__dict__.get("_derive_memory") == "checkpoint" for m in model.modules()):
        hooks = [u.register_forward_pre_hook(inputs) for u in checkpoint_units(model)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    for hook in hooks:
        hook.remove()
    loss.backward()
    return sum(storages.values())


GLIBC_SETTLED = (32 << 20, 64 << 20)
"""glibc's own mmap and trim thresholds once they have risen as far as they go."""
THRESHOLDS = {
    "standard": GLIBC_SETTLED,
    "checkpoint": (allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD),
    "reversible": (allocator.MMAP_THRESHOLD, allocator.TRIM_THRESHOLD),
}


def rng_states(model: nn.Module, x: torch.Tensor) -> int:
    """How many blocks' RNG states the reversible Functions of one forward keep (one per block
    that drew random numbers)."""
    nodes, seen, todo = 0, set(), [model(x).sum().grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        nodes += sum(state is not None for state in getattr(node, "rng", ()))
        todo += [n for n, _ in node.next_functions]
    return nodes


def step_fn(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    thresholds: tuple[int, int] | None = None,
):
    """One SGD step, timed; `thresholds` (mmap, trim) are set before it where given."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> float:
        if thresholds is not None:
            allocator.set_thresholds(*thresholds)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def forward_fn(model: nn.Module, x: torch.Tensor):
    """A training-mode forward without a graph: what recomputing every block once costs."""

    def forward() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        return time.perf_counter() - start

    return forward


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(depth: int, mode: str, size: int, allocation: str) -> None:
    """One step in this (fresh) process; prints {"before": KiB, "peak": KiB, "reset": bool}.

    allocation "derive": the allocator set up as derive train does for `mode`; "glibc": untouched.
    """
    if allocation == "derive":
        allocator.configure_for(mode)
    model = build(depth, mode)
    x, y = batch(size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before": before, "peak": peak, "reset": reset}))


def peak_rss(
    depth: int, mode: str, size: int, threads: int, allocation: str = "derive"
) -> tuple[float, bool]:
    """MiB above the pre-step RSS at the peak of one step, measured in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--child", str(depth), mode, allocation]
    out = subprocess.run(
        [*command, "--batch", str(size), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return (result["peak"] - result["before"]) / 1024, result["reset"]


def reconstruction_errors(depth: int, size: int) -> dict[str, float]:
    """Largest relative error of the recovered z₁, z₀ over the stages, per precision."""
    x, _ = batch(size)
    errors = {}
    settings = {
        "float64": (torch.float64, False),
        "float32": (torch.float32, False),
        "bf16 autocast, fp32 stream": (torch.float32, True),
        "bf16 stream": (torch.bfloat16, False),
    }
    base = build(depth, "standard")
    for label, (dtype, autocast) in settings.items():
        model = copy.deepcopy(base).to(dtype)
        worst = 0.0
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            h = model.stem(x.to(dtype))
            for stage in model.stages:
                if not hasattr(stage, "blocks"):
                    h = stage(h)
                    continue
                z0 = stage.shortcut(h).to(dtype)
                history = [z0, z0]
                states = []
                for k, block in enumerate(stage.blocks):
                    history = [block(history, h if k == 0 else None).to(dtype), history[0]]
                    states.append(history[0])
                z1, z0_back = reconstruct(stage, history)
                scale = max(s.abs().max().item() for s in states)
                err = max((z1 - states[0]).abs().max().item(), (z0_back - z0).abs().max().item())
                worst = max(worst, err / scale)
                h = stage.readout(history)
        errors[label] = worst
    return errors


def gradient_agreement(depth: int = 56, size: int = 64) -> dict[str, float]:
    """‖g − g_ref‖ / ‖g_ref‖ of one batch's parameter gradients, and how sensitive they are.

    The float64 standard gradient is the reference. The sensitivity rows perturb, in float64, the
    input of every T that the reversible backward recomputes by Gaussian noise of `eps` times the
    channel's standard deviation: the size of error a reconstruction leaves.
    """
    base = build(depth, "standard")
    x, y = batch(size)

    def grads(mode: str, dtype: torch.dtype, eps: float = 0.0) -> torch.Tensor:
        model = set_memory(copy.deepcopy(base).to(dtype), mode)
        noise = torch.Generator().manual_seed(1)

        def perturb(module: nn.Module, args: tuple) -> tuple:
            z = args[0]
            scale = z.std(dim=(0, 2, 3), keepdim=True)
            return (z + eps * scale * torch.randn(z.shape, generator=noise, dtype=z.dtype),)

        if eps:
            for stage in model.stages:
                for block in list(getattr(stage, "blocks", []))[1:]:
                    block.branch.register_forward_pre_hook(perturb)
        F.cross_entropy(model(x.to(dtype)), y).backward()
        return torch.cat([p.grad.double().flatten() for p in model.parameters()])

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    exact = grads("standard", torch.float64)
    standard, reversible = grads("standard", torch.float32), grads("reversible", torch.float32)
    return {
        "standard float32 vs float64": rel(standard, exact),
        "reversible float32 vs float64": rel(reversible, exact),
        "reversible vs standard, float32": rel(reversible, standard),
        "reversible vs standard, float64": rel(grads("reversible", torch.float64), exact),
        "float64, T inputs perturbed by 1e-7 channel std": rel(
            grads("standard", torch.float64, 1e-7), exact
        ),
        "float64, T inputs perturbed by 1e-6 channel std": rel(
            grads("standard", torch.float64, 1e-6), exact
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="20,56,110,164,1001")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--goal-batch", type=int, default=64, help="batch of the prehbnet110 RSS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the report (markdown) here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(int(args.child[0]), args.child[1], args.batch, args.child[2])
        return
    depths = [int(d) for d in args.depths.split(",")]
    x, y = batch(args.batch)
    rows = []
    for depth in depths:
        print(f"prehbnet{depth} …", file=sys.stderr, flush=True)
        models = {mode: build(depth, mode) for mode in MEMORY_MODES}
        row = {"depth": depth}
        for mode, model in models.items():
            row[f"saved_{mode}"] = saved_bytes(model, x, y) / 2**20
            row[f"rss_{mode}"], row["rss_reset"] = peak_rss(depth, mode, args.batch, args.threads)
        row["rss_reversible_glibc"], _ = peak_rss(
            depth, "reversible", args.batch, args.threads, "glibc"
        )
        steps = {mode: step_fn(model, x, y, THRESHOLDS[mode]) for mode, model in models.items()}
        steps["reversible_glibc"] = step_fn(models["reversible"], x, y, GLIBC_SETTLED)
        steps["forward"] = forward_fn(models["standard"], x)
        allocator.set_thresholds(*GLIBC_SETTLED)  # the forward floor: as standard runs
        for step in steps.values():
            step()
        times = {mode: [] for mode in steps}
        for _ in range(args.rounds):
            for mode, step in steps.items():
                times[mode].append(step())
        for mode in steps:
            row[f"time_{mode}"] = statistics.median(times[mode])
        del models, steps
        row["recon"] = reconstruction_errors(depth, args.batch)
        row["rng_states"] = rng_states(build(depth, "reversible"), x)
        rows.append(row)
    print(f"prehbnet110 at batch {args.goal_batch} …", file=sys.stderr, flush=True)
    goal = {
        allocation: {
            mode: peak_rss(110, mode, args.goal_batch, args.threads, allocation)[0]
            for mode in MEMORY_MODES
        }
        for allocation in ("derive", "glibc")
    }
    print("gradient agreement …", file=sys.stderr, flush=True)
    agreement = gradient_agreement()
    report = render(rows, args, agreement, goal)
    print(report)
    if args.out:
        Path(args.out).write_text(report, encoding="utf-8")


def render(
    rows: list[dict],
    args: argparse.Namespace,
    agreement: dict[str, float],
    goal: dict[str, dict[str, float]],
) -> str:
    load = os.getloadavg()
    lines = [
        "# Benchmark: activation memory of one training step against depth (CPU)",
        "",
        f"Command: `.venv/bin/python bench/bench_memory.py --depths {args.depths} --batch {args.batch} "
        f"--rounds {args.rounds} --goal-batch {args.goal_batch} --threads {args.threads} "
        "--out docs/results/bench_memory.md`.",
        f"Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
        f"other jobs (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over 1 / 5 / 15 "
        f"minutes at the end), {args.threads} torch thread(s), torch "
        f"{torch.__version__}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. "
        "No GPU was lent to this work: no GPU memory or time was measured.",
        "",
        f"Networks: prehbnet{{depth}} (pre-activation HBNet, random init), batch {args.batch} of "
        "3×32×32 in float32, SGD with momentum; the methods are in the script's docstring.",
        "",
        "## Activation memory (MiB)",
        "",
        "| depth | saved: standard | checkpoint | reversible | reversible / standard "
        "| peak RSS: standard | checkpoint | reversible | checkpoint / standard "
        "| reversible / standard | reversible, glibc's own allocator |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss = r["rss_standard"]
        lines.append(
            f"| {r['depth']} | {r['saved_standard']:.1f} | {r['saved_checkpoint']:.1f} | "
            f"{r['saved_reversible']:.1f} | {r['saved_reversible'] / r['saved_standard']:.3f} | "
            f"{rss:.1f} | {r['rss_checkpoint']:.1f} | {r['rss_reversible']:.1f} | "
            f"{r['rss_checkpoint'] / rss:.2f} | {r['rss_reversible'] / rss:.2f} | "
            f"{r['rss_reversible_glibc']:.1f} |"
        )
    lines += [
        "",
        "Peak RSS as `derive train` runs each mode: standard with glibc's own allocator "
        "behaviour, checkpoint and reversible with derive's (large freed blocks returned to the "
        "system at once, derive/allocator.py); the last column is reversible without it.",
        "",
        f"### Peak RSS of prehbnet110 at batch {args.goal_batch} (MiB above the RSS before "
        "the step)",
        "",
        "| allocator | standard | checkpoint | reversible | checkpoint / standard "
        "| reversible / standard |",
        "|---|---|---|---|---|---|",
    ]
    base = goal["glibc"]["standard"]
    for allocation, label in (
        ("derive", "as derive train sets it per mode"),
        ("glibc", "glibc's own, every mode"),
    ):
        g = goal[allocation]
        lines.append(
            f"| {label} | {g['standard']:.0f} | {g['checkpoint']:.0f} | {g['reversible']:.0f} "
            f"| {g['checkpoint'] / base:.2f} | {g['reversible'] / base:.2f} |"
        )
    lines += [
        "",
        "Both rows' ratios are to standard with glibc's own allocator (what a standard run uses).",
        "",
        "Not in the saved bytes: the reversible mode's RNG states, kept only for blocks that "
        "draw random numbers (5 KiB each on the CPU): "
        + ", ".join(f"{r['rng_states']} at depth {r['depth']}" for r in rows)
        + ".",
        "",
        "## Step time (median seconds, ratio to standard)",
        "",
        "The floor of a recomputing mode is one more forward pass per step: 1 + (forward without "
        "a graph) / (standard step), measured in the same rounds. On this CPU a forward costs "
        "about half a backward, so the floor is well above the ~1.33× of a GPU, where backward "
        "costs about twice the forward.",
        "",
        "Checkpoint and reversible run with derive's allocator setting, as `derive train` runs "
        "them; the last column times reversible with the standard mode's setting.",
        "",
        "| depth | standard | checkpoint | reversible | floor | reversible, glibc's settled "
        "thresholds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["time_standard"]
        lines.append(
            f"| {r['depth']} | {t:.3f} | {r['time_checkpoint']:.3f} "
            f"({r['time_checkpoint'] / t:.2f}×) | {r['time_reversible']:.3f} "
            f"({r['time_reversible'] / t:.2f}×) | {1 + r['time_forward'] / t:.2f}× | "
            f"{r['time_reversible_glibc']:.3f} ({r['time_reversible_glibc'] / t:.2f}×) |"
        )
    labels = list(rows[0]["recon"])
    lines += [
        "",
        "## Reconstruction error of z₀ (largest relative error over the stages)",
        "",
        "| depth | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} | " + " | ".join(f"{r['recon'][k]:.2e}" for k in labels) + " |"
        )
    lines += [
        "",
        "## Gradient agreement (prehbnet56, batch 64, one step)",
        "",
        "‖g − g_ref‖ / ‖g_ref‖ over all parameter gradients; the reference is the float64 "
        "standard gradient unless the row names another. The last rows show how sensitive this "
        "network's gradient is at initialization to perturbations of the size a reconstruction "
        "leaves (computed in float64, so no rounding is involved).",
        "",
        "| comparison | relative difference |",
        "|---|---|",
        *(f"| {label} | {value:.2e} |" for label, value in agreement.items()),
    ]
    by_depth = {r["depth"]: r for r in rows}
    lines += ["", "## Goals", ""]

    def ratio(a: int, b: int) -> str:
        if a in by_depth and b in by_depth:
            value = by_depth[a]["saved_reversible"] / by_depth[b]["saved_reversible"]
            return f"{value:.2f}"
        return "not measured"

    lines.append(
        f"- reversible saved bytes, prehbnet164 / prehbnet20: {ratio(164, 20)} (goal ≤ 1.2); "
        f"within one unit type: prehbnet110 / prehbnet20 {ratio(110, 20)}, "
        f"prehbnet1001 / prehbnet164 {ratio(1001, 164)}"
    )
    if 110 in by_depth:
        r = by_depth[110]
        lines.append(
            f"- reversible / standard saved bytes at depth 110: "
            f"{r['saved_reversible'] / r['saved_standard']:.3f} (goal ≤ 0.25)"
        )
    g = goal["derive"]
    lines.append(
        f"- peak RSS at depth 110, batch {args.goal_batch}, as derive train runs each mode: "
        f"reversible / standard {g['reversible'] / goal['glibc']['standard']:.2f}, checkpoint / "
        f"standard {g['checkpoint'] / goal['glibc']['standard']:.2f} (goal ≤ 0.30)"
    )
    worst = max(r["time_reversible"] / r["time_standard"] for r in rows)
    lines.append(f"- reversible / standard step time, worst depth: {worst:.2f} (goal ≤ 1.5)")
    if not all(r["rss_reset"] for r in rows):
        lines.append("- peak RSS: /proc/self/clear_refs was refused; ru_maxrss used instead")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
