"""The probe of the stability study: the scale of the features during the first steps of a run.

`probe_run(RUN_DIR, steps=K)` rebuilds a `derive train` run from its summary.json (the same model,
init, data order, crops, flips, optimizer and warm-up) and replays its first K + 1 optimizer steps
with forward hooks on the blocks of every stage. Per step it records the standard deviation of each
block's output z_k over the batch (all elements), of the logits, the loss and the gradient norm;
step 1 sees the initial weights, step K + 1 the weights after K updates. Forward hooks read the
outputs only: the generated blocks are not changed.

The replayed losses are compared with the run's own steps.csv; the largest difference is recorded, so
a probe that no longer follows `derive train` (another optimizer setting, another step) shows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from derive import __version__
from derive.devices import device_name
from derive.errors import UserError
from derive.fsutil import atomic_write_text, ensure_output_dir
from derive.readers import field, read_json_object
from derive.train.config import TrainConfig
from derive.train.data import channel_stats, load_cifar
from derive.train.runfiles import json_safe, load_summary
from derive.train.steplog import grad_norm, read_steps
from derive.train.warmup import Warmup

if TYPE_CHECKING:
    from derive.train.augment import BatchMaker
    from derive.train.loop import Runtime

FORMAT = "derive-stability-probe/1"


def config_of_run(run_dir: str | Path, data_dir: str | None = None) -> TrainConfig:
    """The TrainConfig a run was made with (from its summary.json); UserError if it has none."""
    summary = load_summary(run_dir)  # UserError naming the file if it is damaged
    if summary is None or not isinstance(summary.get("options"), dict):
        raise UserError(f"{str(run_dir)!r} is not a derive train run (no readable summary.json)")
    known = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in summary["options"].items() if k in known}
    if "lr_milestones" in options:
        options["lr_milestones"] = tuple(options["lr_milestones"])
    options.update(resume=False, force=False, download=False, log_steps=False, progress_interval=0)
    if data_dir is not None:
        options["data_dir"] = data_dir
    try:
        return TrainConfig(**options)
    except TypeError as exc:
        raise UserError(f"{run_dir}: summary.json options do not fit derive train: {exc}") from None


def block_hooks(model: nn.Module, sink: dict[int, float]) -> tuple[list[tuple[int, int]], list]:
    """Forward hooks that store std(z_k) of every block of every stage into `sink[index]`.

    Residual-type stages (`.blocks`): each block's output is z_{k+1}. Dense stages (`.units`): the
    stage returns [z_0, ..., z_K] concatenated; it is split back into z_1 ... z_K. Returns the
    (stage, k) label of each index and the hook handles.
    """
    stages = getattr(model, "stages", None)
    if stages is None:
        raise UserError("the probe needs a zoo-shaped network (stem, stages, head)")
    labels: list[tuple[int, int]] = []
    handles = []
    stage_number = 0
    for stage in stages.children():
        if hasattr(stage, "blocks"):
            stage_number += 1
            for k, block in enumerate(stage.blocks, start=1):
                index = len(labels)
                labels.append((stage_number, k))
                handles.append(block.register_forward_hook(_store(sink, index)))
        elif hasattr(stage, "units"):
            stage_number += 1
            units = len(stage.units)
            first = len(labels)
            labels += [(stage_number, k) for k in range(1, units + 1)]
            handles.append(stage.register_forward_hook(_store_dense(sink, first, units)))
    if not labels:
        raise UserError("the probe found no stage with blocks or units in the model")
    return labels, handles


def parameter_parts(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The parameters grouped by the network's parts: the stem, each stage (and transition), the head."""
    parts: list[tuple[str, list[nn.Parameter]]] = []
    for name, child in model.named_children():
        if name == "stages":
            for i, stage in enumerate(child.children(), start=1):
                parts.append((f"stages.{i}", list(stage.parameters())))
        else:
            parts.append((name, list(child.parameters())))
    return [(name, ps) for name, ps in parts if ps]


def _norm(parameters: list[nn.Parameter]) -> float:
    return float(
        torch.linalg.vector_norm(torch.stack([p.detach().float().norm() for p in parameters]))
    )


def _std(t: torch.Tensor) -> float:
    return float(t.detach().float().std())


def _store(sink: dict[int, float], index: int) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        sink[index] = _std(output)

    return hook


def _store_dense(sink: dict[int, float], first: int, units: int) -> Callable[..., None]:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        z0_channels = inputs[0].shape[1]
        growth = (output.shape[1] - z0_channels) // units
        for k in range(units):
            start = z0_channels + k * growth
            sink[first + k] = _std(output[:, start : start + growth])

    return hook


def _batch_maker(config, data, rt):
    """The run's batches, normalised and augmented as its training made them."""
    # deferred: train.augment and train.loop import torch._dynamo (~3 s); `derive stability
    # report` imports this module for read_probe only
    from derive.train.augment import BatchMaker, Normalizer

    mean, std = channel_stats(data.train_images)
    return BatchMaker(
        torch.from_numpy(data.train_images).to(rt.device),
        torch.from_numpy(data.train_labels).to(rt.device),
        Normalizer(mean, std, rt.device),
        config.augment_options(),
        rt.memory_format,
    )


def _optimizer(config, model: torch.nn.Module) -> torch.optim.SGD:
    """SGD as derive.train.loop.run_training makes it."""
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def _difference_to_steps_csv(run_dir: Path, losses: list[float]) -> float | None:
    """Largest gap between the replayed losses and the run's logged ones (None without steps.csv)."""
    steps_file = run_dir / "steps.csv"
    if not steps_file.is_file():
        return None
    logged = [r["loss"] for r in read_steps(steps_file)][: len(losses)]
    if len(logged) != len(losses):
        return None
    return max(abs(a - b) for a, b in zip(logged, losses, strict=True))


def probe_run(
    run_dir: str | Path, steps: int = 20, data_dir: str | None = None
) -> dict[str, object]:
    """Replay the first `steps` + 1 steps of a run with hooks; return the probe's record."""
    # deferred: train.augment and train.loop import torch._dynamo (~3 s); `derive stability
    # report` imports this module for read_probe only
    from derive.train.loop import build_model, resolve_runtime

    config = config_of_run(run_dir, data_dir)
    rt = resolve_runtime(config)
    data = load_cifar(config.dataset, config.data_dir)
    _check_steps(steps, -(-len(data.train_labels) // config.batch_size))
    model = build_model(config).to(rt.device, memory_format=rt.memory_format)
    batches = _batch_maker(config, data, rt)
    sink: dict[int, float] = {}
    labels, handles = block_hooks(model, sink)
    parts = parameter_parts(model)
    try:
        record = _replay(config, rt, model, batches, steps, sink, len(labels), parts)
    finally:
        for handle in handles:
            handle.remove()
    difference = _difference_to_steps_csv(Path(run_dir), record["loss"])
    return {
        "format": FORMAT,
        "run": str(run_dir),
        "model": config.model,
        "seed": config.seed,
        "steps": len(record["loss"]),
        "note": "row s of each list is optimizer step s (1-based): its forward pass sees the weights "
        "after s - 1 updates; z_std[s][j] = std over the batch of block j's output; "
        "part_grad_norm[s][i] and part_weight_norm[s][i]: L2 norms of the gradients (before the "
        "update) and of the weights (before the update) of the parameters of parts[i]",
        "blocks": [list(label) for label in labels],
        "parts": [name for name, _ in parts],
        **record,
        "max_loss_difference_to_steps_csv": difference,
        "device": device_name(rt.device),
        "torch": torch.__version__,
        "derive": __version__,
    }


def _check_steps(steps: int, n_batches: int) -> None:
    """UserError unless the probe's `steps` + 1 steps all fall in the first epoch."""
    if not 1 <= steps < n_batches:
        raise UserError(
            f"--steps must be between 1 and {n_batches - 1} (the probe replays steps of the first "
            f"epoch, which has {n_batches}), got {steps}"
        )


def _replay(
    config: TrainConfig,
    rt: Runtime,
    model: nn.Module,
    batches: BatchMaker,
    steps: int,
    sink: dict[int, float],
    blocks: int,
    parts: list[tuple[str, list[nn.Parameter]]],
) -> dict[str, list]:
    """The per-step lists of the probe: train steps 1 .. `steps` + 1 of epoch 1 as `derive train`
    does (same seed, batches, optimizer and warm-up), reading the hooks' `sink` after each."""
    # deferred: train.augment and train.loop import torch._dynamo (~3 s); `derive stability
    # report` imports this module for read_probe only
    from derive.train.augment import derive_seed

    optimizer = _optimizer(config, model)
    warmup = Warmup(config.warmup_steps, config.warmup_factor, config.warmup_until_error)
    names = ("z_std", "logit_std", "loss", "grad_norm", "lr", "part_grad_norm", "part_weight_norm")
    record: dict[str, list] = {name: [] for name in names}
    torch.manual_seed(derive_seed(config.seed, 1, "model"))  # as train_epoch does for epoch 1
    model.train()
    for i, (x, y) in enumerate(batches.train_batches(config.batch_size, config.seed, 1)):
        if i > steps:
            break
        sink.clear()
        with rt.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = grad_norm(model.parameters())
        record["part_grad_norm"].append([float(grad_norm(ps)) for _, ps in parts])
        record["part_weight_norm"].append([_norm(ps) for _, ps in parts])
        with warmup.scaled(optimizer) as lr_used:
            optimizer.step()
        hits = int((logits.detach().argmax(1) == y).sum())
        warmup.after_step(*((y.shape[0] - hits, y.shape[0]) if warmup.needs_counts else ()))
        record["z_std"].append([sink[j] for j in range(blocks)])
        record["logit_std"].append(_std(logits))
        record["loss"].append(float(loss.detach()))
        record["grad_norm"].append(float(norm))
        record["lr"].append(lr_used)
    return record


def write_probe(out: str | Path, record: dict[str, object]) -> Path:
    target = Path(out)
    ensure_output_dir(target.parent)
    return atomic_write_text(
        target, json.dumps(json_safe(record), indent=1, allow_nan=False) + "\n"
    )


def read_probe(path: str | Path) -> dict[str, object]:
    """A probe file, checked against itself (check_probe); UserError naming it otherwise."""
    data = read_json_object(path)
    if data.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not a stability probe file")
    check_probe(data, str(path))
    return data


_PER_STEP = ("logit_std", "loss", "grad_norm", "lr")


def check_probe(data: dict[str, object], where: str) -> None:
    """UserError unless `data` is a probe the report can use: `steps` rows in every per-step list,
    a number per block in each z_std row and per part in each part_* row, every number finite."""
    field(data, "seed", int, where)
    steps = field(data, "steps", int, where)
    if steps < 1:  # type: ignore[operator]
        raise UserError(f"{where}: steps is {steps}, not at least 1")
    if "model" in data:
        field(data, "model", str, where)
    blocks = field(data, "blocks", list, where)
    for i, block in enumerate(blocks):  # type: ignore[arg-type]
        if not (isinstance(block, list) and len(block) == 2 and all(_is_int(b) for b in block)):
            raise UserError(f"{where}: blocks[{i}] is not a pair of integers [stage, block]")
    if not blocks:
        raise UserError(f"{where}: blocks is empty")
    for key in _PER_STEP:
        _check_rows(data, key, steps, None, where)  # type: ignore[arg-type]
    _check_rows(data, "z_std", steps, len(blocks), where)  # type: ignore[arg-type]
    parts = data.get("parts") or []
    if not (isinstance(parts, list) and all(isinstance(p, str) for p in parts)):
        raise UserError(f"{where}: parts is not a list of names")
    if parts:
        if len(set(parts)) != len(parts) or not {"stem", "head"} <= set(parts):
            raise UserError(f"{where}: parts {parts!r} are not distinct or lack 'stem' and 'head'")
        for key in ("part_grad_norm", "part_weight_norm"):
            _check_rows(data, key, steps, len(parts), where)  # type: ignore[arg-type]
    difference = data.get("max_loss_difference_to_steps_csv")
    if difference is not None and not _is_number(difference):
        raise UserError(f"{where}: max_loss_difference_to_steps_csv is not a number")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def _check_rows(data: dict, key: str, steps: int, width: int | None, where: str) -> None:
    """data[key] holds `steps` numbers (width None) or `steps` rows of `width` numbers."""
    rows = field(data, key, list, where)
    if len(rows) != steps:  # type: ignore[arg-type]
        raise UserError(f"{where}: {key} has {len(rows)} rows, steps says {steps}")  # type: ignore[arg-type]
    for s, row in enumerate(rows, start=1):  # type: ignore[arg-type]
        values = [row] if width is None else row
        if width is not None and not (isinstance(row, list) and len(row) == width):
            raise UserError(f"{where}: {key} row {s} does not hold {width} numbers")
        if not all(_is_number(v) for v in values):
            raise UserError(f"{where}: {key} row {s} holds something other than a finite number")
